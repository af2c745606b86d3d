"""The one exception tree of graphfleet.

Every layer raises subclasses of :class:`FleetError`; driver errors (sqlite3,
lmdb, nats) are translated at the adapter with ``raise ... from e`` so that
callers handle one family. Transient failures (worth a retry) and permanent
ones (retrying cannot help) are different types.
"""

from __future__ import annotations

__all__ = [
    "ChainBroken",
    "LeaseTaken",
    "FleetError",
    "TransientError",
    "PermanentError",
    "ConfigError",
    "InvalidEvent",
    "LogError",
    "LogBusy",
    "LogCorrupted",
    "DuplicateEvent",
    "NotFound",
    "StreamBehindLog",
]


class FleetError(Exception):
    """Base of every error graphfleet raises on purpose."""


class TransientError(FleetError):
    """A failure that may succeed when retried (a server away, a lock held)."""


class PermanentError(FleetError):
    """A failure that no retry can fix (bad input, corrupted state)."""


class ConfigError(PermanentError):
    """A setting is missing or malformed; the message names it and the fix."""


class InvalidEvent(PermanentError):
    """Input that cannot become a canonical event.

    ``reason`` is a short machine-readable code (``not_json``, ``schema``,
    ``unknown_type``, ``oversized``, ``no_event_id``, ``too_deep``,
    ``bad_subject``; README lists them), ``detail`` the human-readable
    explanation.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class LogError(FleetError):
    """The immutable log refused an operation."""


class LogBusy(LogError, TransientError):
    """Another process already appends to the log for the same ingest consumer."""


class LogCorrupted(LogError, PermanentError):
    """The log's hash chain or density check failed."""


class ChainBroken(LogCorrupted):
    """A shipped row does not continue the log it is appended to (wrong position or hash)."""


class LeaseTaken(PermanentError):
    """Another process holds the log writer's lease: this one must not write."""


class DuplicateEvent(LogError, PermanentError):
    """An event id that is already in the log was appended outside dedup."""


class StreamBehindLog(PermanentError):
    """The stream ends below the log's checkpoint for its consumer: it was re-created (or the
    log was filled from another stream), and its messages would be skipped as already logged."""


class NotFound(FleetError):
    """A requested thing (position, event id, projection version) is absent."""
