"""A version's outbox: change records written with the graph change, read in order, pruned.

Records are written in the batch's own LMDB write transaction (DESIGN
invariant 6), keyed by a dense per-version sequence; the record format is
:mod:`projections.model.records`. The change publisher reads them in order;
the version's writer deletes those JetStream has acknowledged
(:func:`prune_outbox`), and ``meta[OUTBOX_PRUNED]`` says how far.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import lmdb
import msgspec

from projections.errors import UnknownVersion
from projections.model.keys import pack_int
from projections.model.records import decode_record, encode_changes, rebuilt_record
from projections.store.graph import CHECKPOINT, OUTBOX_PRUNED, OUTBOX_SEQ, GraphStore, putmulti

__all__ = ["OutboxReader", "append_changes", "append_rebuilt", "append_records", "prune_outbox"]

_encode = msgspec.msgpack.Encoder().encode


def append_changes(store: GraphStore, txn: lmdb.Transaction, changes: Iterable[tuple]) -> int:
    """Append a batch's change records in ``txn``, the batch's own transaction; returns how many."""
    seq = store.meta_int(txn, OUTBOX_SEQ)
    records = encode_changes(changes, seq + 1)
    if not records:
        return 0
    putmulti(txn, store.env.outbox, records)
    store.put_meta(txn, OUTBOX_SEQ, seq + len(records))
    return len(records)


def append_records(store: GraphStore, txn: lmdb.Transaction, records: Iterable[dict]) -> int:
    """Append ready-made records (dicts without ``seq``) in ``txn``; returns how many."""
    seq = first = store.meta_int(txn, OUTBOX_SEQ) + 1
    rows = []
    for record in records:
        record["seq"] = seq
        rows.append((pack_int(seq), _encode(record)))
        seq += 1
    if rows:
        putmulti(txn, store.env.outbox, rows)
        store.put_meta(txn, OUTBOX_SEQ, seq - 1)
    return seq - first


def append_rebuilt(store: GraphStore, *, projection: str, version: int, previous: int | None,
                   digest: str | None) -> None:
    """Write the one ``rebuilt`` record of a version about to be promoted."""
    with store.env.write() as txn:
        seq = store.meta_int(txn, OUTBOX_SEQ) + 1
        key, value = rebuilt_record(seq, projection=projection, version=version, previous=previous,
                                    position=store.meta_int(txn, CHECKPOINT), digest=digest)
        txn.put(key, value, db=store.env.outbox)
        store.put_meta(txn, OUTBOX_SEQ, seq)
        txn.commit()


class OutboxReader:
    """Read access to one version's outbox (the environment is shared per process)."""

    def __init__(self, version_dir: Path) -> None:
        self.path = Path(version_dir)
        self._store: GraphStore | None = GraphStore(self.path)

    def _require(self) -> GraphStore:
        if self._store is None:
            raise UnknownVersion(f"outbox reader of {self.path} is closed")
        return self._store

    def head(self) -> int:
        """The last change sequence written to the outbox."""
        store = self._require()
        with store.env.read() as txn:
            return store.meta_int(txn, OUTBOX_SEQ)

    def floor(self) -> int:
        """The last change sequence pruned (published, then deleted) from the outbox."""
        store = self._require()
        with store.env.read() as txn:
            return store.meta_int(txn, OUTBOX_PRUNED)

    def read(self, after: int, limit: int) -> tuple[int, int, list[dict]]:
        """``(head, floor, records)``: up to ``limit`` records with ``seq > max(after, floor)``, in order.

        ``floor`` is the last sequence pruned (records up to it are gone).
        """
        store = self._require()
        records: list[dict] = []
        with store.env.read() as txn:
            head = store.meta_int(txn, OUTBOX_SEQ)
            floor = store.meta_int(txn, OUTBOX_PRUNED)
            start = max(after, floor)
            if head > start:
                cursor = txn.cursor(store.env.outbox)
                if cursor.set_range(pack_int(start + 1)):
                    for value in cursor.iternext(keys=False, values=True):
                        records.append(decode_record(value))
                        if len(records) >= limit:
                            break
        return head, floor, records

    def close(self) -> None:
        """Release the environment."""
        if self._store is not None:
            self._store.close()
            self._store = None


def prune_outbox(store: GraphStore, *, upto: int, limit: int) -> int:
    """Delete outbox records with ``seq <= upto``, at most ``limit`` of them, oldest first.

    One write transaction (nothing committed when there is nothing to
    delete); only the version's writer may call it, and ``upto`` must not
    pass the publisher's watermark (see :func:`prunable`). Returns the new
    floor (the last sequence deleted so far).
    """
    with store.env.write() as txn:
        floor = store.meta_int(txn, OUTBOX_PRUNED)
        last = min(upto, floor + limit, store.meta_int(txn, OUTBOX_SEQ))
        if last <= floor:
            return floor
        cursor = txn.cursor(store.env.outbox)
        end = pack_int(last)
        found = cursor.set_range(pack_int(floor + 1))
        while found and (key := cursor.key()) and key <= end:  # keys are big-endian: bytes order
            found = cursor.delete()
        store.put_meta(txn, OUTBOX_PRUNED, last)
        txn.commit()
    return last
