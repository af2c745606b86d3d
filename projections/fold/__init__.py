"""The write path: events -> mutations (pure) -> overlay -> write set, applied in batches exactly once."""
