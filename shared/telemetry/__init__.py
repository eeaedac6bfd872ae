"""Telemetry: events in → validated readings, the raw-batch blob format, and ingest."""
