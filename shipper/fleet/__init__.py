"""What the serverless functions do, shared by both clouds: verify an object, replicate it
to the other cloud, record both copies in the catalog (:mod:`shipper.fleet.service`)."""
