"""Errors of the projection layer, all in the fleet's one exception tree.

They subclass :mod:`events.errors`, so the CLI maps them to exit codes like
every other fleet error (``NotFound`` and ``PermanentError`` exit 1, bad
arguments exit 2).
"""

from __future__ import annotations

from events.errors import ConfigError, FleetError, NotFound, PermanentError, TransientError

__all__ = [
    "ProjectionError",
    "PoisonEvent",
    "NoActiveVersion",
    "UnknownVersion",
    "UnknownNode",
    "VersionStateError",
    "StoreError",
    "StoreBusy",
    "VersionDamaged",
    "QueryError",
]


class ProjectionError(FleetError):
    """Base of the projection layer's errors."""


class PoisonEvent(ProjectionError, PermanentError):
    """An event in the log that the projection cannot apply.

    In live mode it is recorded (``position``, ``reason``) and skipped; a
    rebuild stops on it. The message names the position, the event and why.
    """

    def __init__(self, position: int, event_id: str | None, event_type: str | None, reason: str) -> None:
        self.position = position
        self.event_id = event_id
        self.event_type = event_type
        self.reason = reason
        what = f"event {event_id or '?'} ({event_type or 'unknown type'})"
        super().__init__(
            f"cannot apply log position {position}, {what}: {reason}"
            f" - inspect it with `fleet log show {position}`"
        )


class NoActiveVersion(ProjectionError, NotFound):
    """No version of the projection has been built and promoted yet."""


class UnknownVersion(ProjectionError, NotFound):
    """A projection version that does not exist on disk."""


class UnknownNode(ProjectionError, NotFound):
    """A node id that parses but names no node of the graph."""


class VersionStateError(ProjectionError, PermanentError):
    """An operation that the version's state forbids (drop the active one, ...)."""


class StoreError(ProjectionError, PermanentError):
    """LMDB refused an operation (translated from ``lmdb.Error``)."""


class VersionDamaged(StoreError):
    """A version written with deferred fsync when the machine went down: it may be corrupt.

    The projector sets it aside (``v<N>.damaged-<time>``) and rebuilds it from the log.
    """


class StoreBusy(ProjectionError, TransientError):
    """Another process holds the version's writer lock (a projector or a rebuild)."""


class QueryError(ProjectionError, ConfigError):
    """A malformed query argument: the message names it and the expected form."""
