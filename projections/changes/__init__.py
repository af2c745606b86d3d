"""The change feed's storage side: the outbox, the diff between versions, the downstream contract."""
