"""What the log stores and hands back: row tuples, results, the uniqueness key of an event id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import NamedTuple

from .chain import GENESIS_HASH

__all__ = ["Accepted", "AppendResult", "LogEntry", "Rejected", "VerifyReport", "id_key", "now_iso"]


def id_key(event_id: str) -> bytes:
    """The uniqueness key of an event id: 16 bytes for a canonical UUID, else UTF-8.

    Packing UUIDs halves the unique index. Only the UUID form (32 hex digits,
    dashes at 8, 13, 18 and 23) is packed, so a packed key stands for one UUID
    (compared case-insensitively, as README says); any other id keeps its
    UTF-8 bytes, and one of exactly 16 bytes gets a ``0xff`` suffix (a byte
    UTF-8 never contains) so it cannot pass for a packed key. Distinct ids,
    distinct keys.
    """
    if len(event_id) == 36 and event_id[8] == event_id[13] == event_id[18] == event_id[23] == "-":
        digits = event_id.replace("-", "")
        if len(digits) == 32:
            try:
                packed = bytes.fromhex(digits)
            except ValueError:
                packed = None
            if packed is not None and packed.hex() == digits.lower():  # hex digits only
                return packed
    key = event_id.encode()
    return key + b"\xff" if len(key) == 16 else key


class Accepted(NamedTuple):
    """A validated event on its way into the log (a tuple: it crosses process pipes cheaply)."""

    event_id: str
    type: str
    source: str
    occurred_at: str
    payload: str
    subject: str | None = None
    traceparent: str | None = None


class Rejected(NamedTuple):
    """Input that failed validation, bound for the quarantine with its raw bytes."""

    raw: bytes
    reason: str
    detail: str
    subject: str | None = None
    headers: str | None = None
    stream_seq: int | None = None


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One committed row of the log.

    ``recorded_at`` is when the fleet took the event in: the arrival in ingest
    of the first event of its batch, or for an append by hand (quarantine
    retry), the moment before the commit.
    """

    position: int
    event_id: str
    type: str
    source: str
    occurred_at: str
    recorded_at: str
    payload: str
    subject: str | None = None
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What one append transaction did."""

    appended: int
    duplicates: int
    quarantined: int
    head: int
    head_hash: bytes = GENESIS_HASH  # the chain's hash at ``head``


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """Outcome of :meth:`EventLog.verify`; ``problems`` is empty when the log is intact."""

    checked: int
    head: int
    problems: tuple[str, ...]
    #: the chain's hash at ``head`` (hex): equal on a replica and its primary at the same position
    head_hash: str = GENESIS_HASH.hex()

    @property
    def ok(self) -> bool:
        return not self.problems


def now_iso() -> str:
    """The current UTC time as the log writes it (``recorded_at``): RFC 3339, microseconds, ``Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")
