"""A committed log row as the ``LOG`` stream carries it, and the check that it chains (pure).

The primary's shipper sends every row of its log, in position order, as one
JSON message; a replica appends them to a log of its own with the same
positions, ids, ``recorded_at`` and hashes, so ``fleet verify`` gives the
same head hash on both. A row is taken only if it continues the replica's
tail: its position is the next one and its hash is the chain hash of the
tail's hash and its own content (:func:`events.chain.chain_hash`).
"""

from __future__ import annotations

import msgspec

from .chain import Tail, chain_hash
from .errors import ChainBroken, InvalidEvent

__all__ = ["ShippedRow", "check_chain", "decode_row", "encode_row"]


class ShippedRow(msgspec.Struct, frozen=True, kw_only=True):
    """One log row, every column of it (``hash`` hex-encoded)."""

    position: int
    event_id: str
    type: str
    source: str
    occurred_at: str
    payload: str
    subject: str | None = None
    traceparent: str | None = None
    recorded_at: str
    hash: str

    def row(self) -> tuple:
        """The log's row tuple (the column order of ``events`` inserts)."""
        return (self.position, self.event_id, self.type, self.source, self.occurred_at, self.payload,
                self.subject, self.traceparent, self.recorded_at, bytes.fromhex(self.hash))


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ShippedRow)


def encode_row(row: tuple) -> bytes:
    """The LOG message of a log row tuple ``(position, event_id, ..., recorded_at, hash)``."""
    position, event_id, type_, source, occurred_at, payload, subject, traceparent, recorded_at, digest = row
    return _encoder.encode(ShippedRow(
        position=position, event_id=event_id, type=type_, source=source, occurred_at=occurred_at,
        payload=payload, subject=subject, traceparent=traceparent, recorded_at=recorded_at,
        hash=digest.hex()))


def decode_row(data: bytes) -> ShippedRow:
    """A LOG message back to its row; :class:`InvalidEvent` (``bad_row``) when it is not one."""
    try:
        row = _decoder.decode(data)
        bytes.fromhex(row.hash)
    except (msgspec.DecodeError, ValueError) as e:
        raise InvalidEvent("bad_row", f"not a shipped log row: {e}") from e
    return row


def check_chain(tail: Tail, rows: list[ShippedRow]) -> Tail:
    """The tail after ``rows`` if each continues the one before, from ``tail``; else
    :class:`ChainBroken` naming the first row that does not."""
    position, prev = tail
    for row in rows:
        if row.position != position + 1:
            raise ChainBroken(
                f"shipped row at position {row.position} (event {row.event_id}) does not follow"
                f" the log's tail at position {position}: a position was skipped or repeated -"
                " the LOG stream and this log are not the same history")
        expected = chain_hash(prev, row.position, row.event_id, row.recorded_at.encode(), row.payload)
        if expected.hex() != row.hash:
            raise ChainBroken(
                f"shipped row at position {row.position} (event {row.event_id}) carries hash"
                f" {row.hash[:16]}..., but chaining it to the log's tail gives"
                f" {expected.hex()[:16]}...: the row or the history before it differs from this"
                " log's - refused, nothing appended (`fleet verify` on the primary checks its chain)")
        position, prev = row.position, expected
    return Tail(position, prev)
