"""Serverless entry points: thin adapters over :mod:`shipper.fleet` (aws/, gcp/)."""
