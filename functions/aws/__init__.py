"""AWS Lambda handlers: ``verify_replicate.handler`` and ``restore_planner.handler``."""
