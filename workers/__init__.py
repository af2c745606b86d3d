"""Everything that runs in a loop: JetStream ingest, dramatiq actors, projector, publisher."""
