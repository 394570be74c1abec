"""Session-scoped cloud emulators (moto server, fake-gcs-server). Filled in by the cloud work."""
