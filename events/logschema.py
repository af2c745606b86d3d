"""The log's SQLite schema: tables through sqlite-utils, and the triggers that make it immutable."""

from __future__ import annotations

import sqlite_utils

__all__ = ["create_tables"]

# What sqlite-utils cannot declare: a WITHOUT ROWID table, a partial index, triggers.
_RAW_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS event_ids (
        key BLOB PRIMARY KEY,
        position INTEGER NOT NULL
    ) WITHOUT ROWID""",
    # Only the few traced events are indexed: the projector finds their trace
    # context without reading the column of every row.
    """CREATE INDEX IF NOT EXISTS events_traced ON events(position)
       WHERE traceparent IS NOT NULL""",
    """CREATE TRIGGER IF NOT EXISTS events_dense BEFORE INSERT ON events
       WHEN NEW.position IS NOT (SELECT ifnull(max(position), 0) + 1 FROM events)
       BEGIN SELECT RAISE(ABORT, 'log positions must be dense: next position expected'); END""",
    """CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
       BEGIN SELECT RAISE(ABORT, 'the log is immutable: events cannot be updated'); END""",
    """CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
       BEGIN SELECT RAISE(ABORT, 'the log is immutable: events cannot be deleted'); END""",
    """CREATE TRIGGER IF NOT EXISTS event_ids_no_update BEFORE UPDATE ON event_ids
       BEGIN SELECT RAISE(ABORT, 'the log is immutable: event ids cannot be updated'); END""",
    """CREATE TRIGGER IF NOT EXISTS event_ids_no_delete BEFORE DELETE ON event_ids
       BEGIN SELECT RAISE(ABORT, 'the log is immutable: event ids cannot be deleted'); END""",
]


def create_tables(db: sqlite_utils.Database) -> None:
    """Create the log's tables, indexes and triggers where they are missing."""
    db.create_table(
        "events",
        {"position": int, "event_id": str, "type": str, "source": str, "subject": str,
         "occurred_at": str, "recorded_at": str, "payload": str, "hash": bytes,
         "traceparent": str},
        pk="position",
        not_null={"event_id", "type", "source", "occurred_at", "recorded_at", "payload", "hash"},
        if_not_exists=True,
    )
    db.create_table(
        "quarantine",
        {"id": int, "received_at": str, "reason": str, "detail": str, "subject": str,
         "headers": str, "stream_seq": int, "raw": bytes, "status": str,
         "resolved_at": str, "resolution": str},
        pk="id",
        not_null={"received_at", "reason", "detail", "raw", "status"},
        defaults={"status": "open"},
        if_not_exists=True,
    )
    db["quarantine"].create_index(["status", "id"], index_name="quarantine_status", if_not_exists=True)
    db.create_table("consumer_checkpoints", {"consumer": str, "stream_seq": int},
                    pk="consumer", not_null={"stream_seq"}, if_not_exists=True)
    for statement in _RAW_SCHEMA:
        db.execute(statement)
