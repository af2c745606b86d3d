"""The ingest loop: a durable JetStream consumer and the one log writer it hands batches to."""
