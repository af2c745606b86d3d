"""The difference between two projection versions, as ordinary changes.

After ``fleet replay graph`` promotes a new version, its outbox starts with
one ``rebuilt`` notice. :func:`append_diff` appends, right after it (called by
:func:`projections.versions.transition.emit_diff`), the changes
that turn the previous version's graph into the new one, so a downstream copy
of the old version becomes a copy of the new one without a resync:

1. ``edge_removed`` for edges only the old version has,
2. ``node_deleted`` / ``node_upserted`` for nodes that differ (full new state,
   ``changed`` naming the properties that differ),
3. ``edge_added`` / ``edge_updated`` for edges only the new version has or
   whose properties differ,

each marked ``diff: true`` and tagged with the new version's checkpoint as
``position``, and then one ``synced`` record with the new version's digest
(or, when the diff is longer than the fleet's bound, only a ``synced``
record that says ``resync``). Every change carries the full state it leaves, so the result is
right even when the projector has already appended live changes to the new
version before the diff: the diff is computed inside the write transaction
that appends it, against the new version's state at that moment.

The comparison is a streaming merge of the two environments' tables (LMDB
keeps keys sorted), so memory stays flat whatever the graph's size.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, Iterator

import lmdb
import msgspec

from projections.model.keys import format_key, pack_int
from projections.model.ontology import EDGE_TYPES, NODE_TYPES
from projections.model.records import synced_record
from projections.store.graph import CHECKPOINT, OUTBOX_SEQ, GraphStore
from projections.store.writeset import EDGE_BYTES, decode_props

__all__ = ["DiffSummary", "append_diff", "append_resync", "changed_properties", "diff_sorted",
           "diff_stores"]

_encode = msgspec.msgpack.Encoder().encode
_EDGE_NAMES = {e.code: e.name for e in EDGE_TYPES}
_PROPS_EDGES = frozenset(e.code for e in EDGE_TYPES if e.props)


@dataclass(frozen=True)
class DiffSummary:
    """What :func:`append_diff` appended to the new version's outbox."""

    projection: str
    version: int
    previous: int | None
    position: int
    first_seq: int | None
    last_seq: int | None
    nodes_upserted: int = 0
    nodes_deleted: int = 0
    edges_added: int = 0
    edges_updated: int = 0
    edges_removed: int = 0
    elapsed_secs: float = 0.0
    #: the diff was not sent (above the bound, or not computable): subscribers resync
    resync: bool = False
    #: with ``resync``: how many changes the diff had when it was given up (a lower bound)
    resync_changes: int = 0

    @property
    def changes(self) -> int:
        """How many diff changes were appended."""
        return (self.nodes_upserted + self.nodes_deleted + self.edges_added + self.edges_updated
                + self.edges_removed)

    def as_dict(self) -> dict:
        """The summary as plain data (``--json``)."""
        return asdict(self) | {"changes": self.changes}


def diff_sorted(old: Iterable[tuple[Any, Any]], new: Iterable[tuple[Any, Any]]
                ) -> Iterator[tuple[Any, Any, Any]]:
    """``(key, old_value, new_value)`` for every key whose value differs; None = absent.

    Both inputs must be sorted by key with unique keys (LMDB tables are).
    """
    end = object()
    olds, news = iter(old), iter(new)
    o = next(olds, end)
    n = next(news, end)
    while o is not end or n is not end:
        if n is end or (o is not end and o[0] < n[0]):
            yield o[0], o[1], None
            o = next(olds, end)
        elif o is end or n[0] < o[0]:
            yield n[0], None, n[1]
            n = next(news, end)
        else:
            if o[1] != n[1]:
                yield o[0], o[1], n[1]
            o, n = next(olds, end), next(news, end)


def _nodes(txn: lmdb.Transaction | None, store: GraphStore | None, code: int
           ) -> Iterable[tuple[bytes, bytes]]:
    if txn is None or store is None:
        return ()
    return txn.cursor(store.env.nodes[code]).iternext()


def _edges(txn: lmdb.Transaction | None, store: GraphStore | None, code: int
           ) -> Iterator[tuple[tuple[bytes, bytes], bytes]]:
    """``((src, dst), raw props or b"")`` of one edge type, sorted."""
    if txn is None or store is None:
        return
    eprops, suffix, with_props = store.env.eprops, EDGE_BYTES[code], code in _PROPS_EDGES
    for src, dst in txn.cursor(store.env.out[code]).iternext():
        raw = txn.get(src + suffix + dst, db=eprops) if with_props else None
        yield (src, dst), raw or b""


def changed_properties(old: dict, new: dict) -> list[str]:
    """The names of the properties whose values differ between ``old`` and ``new``, sorted."""
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def _props(raw: bytes) -> dict:
    return decode_props(raw) if raw else {}


def diff_stores(old: GraphStore | None, old_txn: lmdb.Transaction | None, new: GraphStore,
                new_txn: lmdb.Transaction) -> Iterator[dict]:
    """Outbox records (without ``seq``) turning ``old``'s graph into ``new``'s; see the module doc.

    ``old`` None means an empty graph: the diff is then every node and edge of ``new``.
    """
    for e in EDGE_TYPES:
        for (src, dst), _, after in diff_sorted(_edges(old_txn, old, e.code),
                                                _edges(new_txn, new, e.code)):
            if after is None:
                yield {"kind": "edge_removed", "src": format_key(src), "edge": e.name,
                       "dst": format_key(dst)}
    for t in NODE_TYPES:
        for key, before, after in diff_sorted(_nodes(old_txn, old, t.code),
                                              _nodes(new_txn, new, t.code)):
            node = format_key(key)
            if after is None:
                yield {"kind": "node_deleted", "node": node, "node_type": t.name,
                       "props": decode_props(before)}
                continue
            props = decode_props(after)
            record = {"kind": "node_upserted", "node": node, "node_type": t.name, "props": props}
            if before is not None:
                changed = changed_properties(decode_props(before), props)
                if not changed:
                    continue
                record["changed"] = changed
            yield record
    for e in EDGE_TYPES:
        for (src, dst), before, after in diff_sorted(_edges(old_txn, old, e.code),
                                                     _edges(new_txn, new, e.code)):
            if after is None:
                continue
            props = _props(after)
            if before is not None and _props(before) == props:
                continue
            record = {"kind": "edge_added" if before is None else "edge_updated",
                      "src": format_key(src), "edge": e.name, "dst": format_key(dst)}
            if props:
                record["props"] = props
            yield record


def append_diff(new: GraphStore, old: GraphStore | None, projection: str, version: int,
                previous: int | None, *, max_changes: int | None = None,
                digest_of: Callable[[lmdb.Transaction], str] | None = None) -> DiffSummary:
    """Append the changes that turn ``old`` into ``new`` to ``new``'s outbox, then a ``synced`` record.

    One transaction: the diff and the ``synced`` record that closes it (with
    ``digest_of(txn)``, the new version's digest at that point) go in
    together. When the diff would be longer than ``max_changes``, nothing of
    it is kept: the ``synced`` record then says ``resync`` instead.
    """
    counts = dict.fromkeys(("node_upserted", "node_deleted", "edge_added", "edge_updated",
                            "edge_removed"), 0)
    bound = float("inf") if max_changes is None else max_changes
    with new.env.write() as txn:
        position = new.meta_int(txn, CHECKPOINT)
        seq = first = new.meta_int(txn, OUTBOX_SEQ) + 1
        outbox = new.env.outbox
        with ExitStack() as stack:
            old_txn = stack.enter_context(old.env.read()) if old is not None else None
            # Streamed straight into the outbox: puts to the outbox table leave the
            # cursors on the graph tables of the same transaction valid.
            for record in diff_stores(old, old_txn, new, txn):
                if seq - first >= bound:
                    break
                record["seq"] = seq
                record["position"] = position
                record["diff"] = True
                counts[record["kind"]] += 1
                txn.put(pack_int(seq), _encode(record), db=outbox, append=True)
                seq += 1
            else:
                key, value = synced_record(seq, position=position, previous=previous,
                                           changes=seq - first, resync=False,
                                           digest=digest_of(txn) if digest_of is not None else None)
                txn.put(key, value, db=outbox, append=True)
                new.put_meta(txn, OUTBOX_SEQ, seq)
                txn.commit()
                return DiffSummary(projection, version, previous, position,
                                   first if seq > first else None, seq - 1 if seq > first else None,
                                   nodes_upserted=counts["node_upserted"],
                                   nodes_deleted=counts["node_deleted"],
                                   edges_added=counts["edge_added"],
                                   edges_updated=counts["edge_updated"],
                                   edges_removed=counts["edge_removed"])
    # Above the bound: the write transaction was left without a commit (nothing of the diff is kept).
    return append_resync(new, projection, version, previous, changes=seq - first + 1)


def append_resync(store: GraphStore, projection: str, version: int, previous: int | None, *,
                  changes: int = 0) -> DiffSummary:
    """Close a version change without a diff: a ``synced`` record that says ``resync``.

    For a diff above the bound (``changes`` is how far it got), or one that
    cannot be computed (the previous version is gone, or was a damaged
    incarnation of this one).
    """
    with store.env.write() as txn:
        position = store.meta_int(txn, CHECKPOINT)
        seq = store.meta_int(txn, OUTBOX_SEQ) + 1
        key, value = synced_record(seq, position=position, previous=previous, changes=changes,
                                   resync=True, digest=None)
        txn.put(key, value, db=store.env.outbox, append=True)
        store.put_meta(txn, OUTBOX_SEQ, seq)
        txn.commit()
    return DiffSummary(projection, version, previous, position, None, None, resync=True,
                       resync_changes=changes)
