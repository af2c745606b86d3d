"""The log's rows and hash chain, built from an expected tail (pure, no I/O).

A log row is ``(position, event_id, type, source, occurred_at, payload,
subject, traceparent, recorded_at, hash)`` with ``hash = blake2b(prev ||
position || event_id || recorded_at || payload)``. Positions and hashes
depend only on the tail they start from, so they can be built before the
commit, by whoever has the time.

The ingest worker does it in its receiving process, as events arrive: the
single log writer is the pipeline's bottleneck, and hashing the chain there
took a quarter of its time. What it builds is a guess about the tail at
commit time: :meth:`events.log.EventLog.append_chained` checks the guess
under the write lock and builds the rows itself when it is wrong (another
process appended, or an id was logged already), so a wrong guess costs time,
never correctness.
"""

from __future__ import annotations

from hashlib import blake2b as _blake2b
from typing import NamedTuple

__all__ = ["GENESIS_HASH", "Chained", "RowChain", "Tail", "chain_hash", "rechain"]

GENESIS_HASH = b"\0" * 32


def chain_hash(prev: bytes, position: int, event_id: str, recorded_at: bytes, payload: str) -> bytes:
    """The hash of one row given the hash of the row before it (``recorded_at`` as UTF-8)."""
    h = _blake2b(prev, digest_size=32)
    h.update(b"%d\0%s\0%s\0" % (position, event_id.encode(), recorded_at))
    h.update(payload.encode())
    return h.digest()


class Tail(NamedTuple):
    """The last row of a log: its position and hash (0 and :data:`GENESIS_HASH` when empty)."""

    position: int = 0
    hash: bytes = GENESIS_HASH


class Chained(NamedTuple):
    """Rows built from ``base``, ready to insert if ``base`` is still the log's tail.

    ``id_rows`` are ``(id key, position)`` in position order; ``duplicates``
    counts the events left out because their id came earlier in the same
    rows (the first occurrence wins).
    """

    base: Tail
    recorded_at: str
    rows: list[tuple]
    id_rows: list[tuple[bytes, int]]
    duplicates: int = 0

    @property
    def tail(self) -> Tail:
        """The tail after these rows."""
        if not self.rows:
            return self.base
        last = self.rows[-1]
        return Tail(last[0], last[-1])


class RowChain:
    """Builds :class:`Chained` rows one event at a time from a tail.

    ``item`` is the event's seven leading row fields (an
    :class:`events.log.Accepted`); ``key`` its :func:`events.log.id_key`.
    """

    __slots__ = ("base", "recorded_at", "duplicates", "_stamp", "_position", "_hash", "_rows",
                 "_id_rows", "_seen")

    def __init__(self, base: Tail, recorded_at: str) -> None:
        self.base = base
        self.recorded_at = recorded_at
        self.duplicates = 0
        self._stamp = recorded_at.encode()
        self._position, self._hash = base
        self._rows: list[tuple] = []
        self._id_rows: list[tuple[bytes, int]] = []
        self._seen: set[bytes] = set()

    def add(self, key: bytes, item: tuple) -> bool:
        """Chain one event; False (and counted) when its id is already in these rows."""
        if key in self._seen:
            self.duplicates += 1
            return False
        self._seen.add(key)
        position = self._position = self._position + 1
        self._hash = chain_hash(self._hash, position, item[0], self._stamp, item[4])
        self._rows.append((position, *item, self.recorded_at, self._hash))
        self._id_rows.append((key, position))
        return True

    @property
    def tail(self) -> Tail:
        """The tail after the rows chained so far."""
        return Tail(self._position, self._hash)

    def chained(self) -> Chained:
        """What was built, for :meth:`events.log.EventLog.append_chained`."""
        return Chained(self.base, self.recorded_at, self._rows, self._id_rows, self.duplicates)


def rechain(chained: Chained, base: Tail, drop: set[bytes] | frozenset[bytes] = frozenset()
            ) -> Chained:
    """The same events chained from ``base`` instead, less those whose key is in ``drop``.

    ``duplicates`` stays as it was: the caller counts what it dropped.
    """
    chain = RowChain(base, chained.recorded_at)
    for (key, _), row in zip(chained.id_rows, chained.rows):
        if key not in drop:
            chain.add(key, row[1:8])
    return chain.chained()._replace(duplicates=chained.duplicates)
