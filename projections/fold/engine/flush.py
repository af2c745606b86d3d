"""A segment's state as sorted table writes, and writing them with the checkpoint.

:func:`segment_writes` turns a :class:`~projections.fold.engine.state.Segment`
into a :class:`~projections.store.writeset.WriteSet` (every table sorted, each
key once); :func:`write_segment` hands it to
:meth:`~projections.store.graph.GraphStore.write` in one write transaction
with the checkpoint and the segment's poison records, so the store appends
past each table's last key and a crash loses the segment or nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import lmdb

from projections.changes.outbox import append_records
from projections.errors import PoisonEvent, StoreError
from projections.fold.applier import MAPPED_BUDGET, data_file_bytes, mapped_bytes
from projections.fold.engine.changes import coalesced_changes
from projections.fold.engine.state import Segment
from projections.fold.slots import MISSING, TOMB
from projections.model.indexing import INDEXED_CODES, index_keys
from projections.store.graph import CHECKPOINT, GraphStore
from projections.store.writeset import EDGE_BYTES, PROPS_EDGES, WriteSet, decode_props, encode_props

__all__ = ["segment_writes", "write_segment"]

log = logging.getLogger(__name__)


def segment_writes(seg: Segment) -> WriteSet:
    """The segment's sorted writes for every table (the segment is spent afterwards)."""
    seg.seal()  # the stamp maps go with the lookups
    ws = WriteSet()
    _nodes(seg, ws)
    # Each part of the state goes as soon as its writes are built: the write
    # set takes its place instead of adding to it.
    seg.nodes, seg.base = {}, {}
    for edge in range(len(seg.out)):
        if seg.out[edge]:
            _edges(seg, ws, edge)
            seg.out[edge], seg.inn[edge] = {}, {}
    ws.eprops_puts.sort()
    ws.eprops_dels.sort()
    writes = seg.lookup_writes
    seg.lookups, seg._adjacent = {}, {}
    for k in sorted(writes):
        node = writes[k]
        if node is None:
            ws.lookup_dels.append(k)
        else:
            ws.lookup_puts.append((k, node))
    return ws


def _nodes(seg: Segment, ws: WriteSet) -> None:
    nodes, base, committed_tombs = seg.nodes, seg.base, seg.tombs
    puts: list = []
    dels: list = []
    idx_puts: list = []
    idx_dels: list = []
    code_now = -1
    for key in sorted(nodes):
        v = nodes[key]
        if v is MISSING:
            continue
        code = key[0]
        if code != code_now:
            code_now = code
            puts, dels = [], []
            ws.nodes[code] = puts
            ws.node_dels[code] = dels
        if v is TOMB:
            if key in committed_tombs:
                continue
            dels.append(key)
            ws.tombs.append(key)
            new = None
        else:
            raw = v if v.__class__ is bytes else encode_props(v)
            if raw == base.get(key):
                continue
            puts.append((key, raw))
            new = v
        if code in INDEXED_CODES:
            old = base.get(key)
            before = index_keys(key, decode_props(old)) if old is not None else set()
            after = index_keys(key, decode_props(new) if new.__class__ is bytes else new) \
                if new is not None else set()
            if before != after:
                idx_dels.extend((k, key) for k in before - after)
                idx_puts.extend((k, key) for k in after - before)
    for table in (ws.nodes, ws.node_dels):
        for code in [c for c, items in table.items() if not items]:
            del table[code]
    idx_puts.sort()
    idx_dels.sort()
    ws.idx_puts = idx_puts
    ws.idx_dels = idx_dels


def _edges(seg: Segment, ws: WriteSet, edge: int) -> None:
    """Sorted puts of both directions, removals once, and edge properties, of one edge type."""
    by_src = seg.out[edge]
    put: list = []
    drop: list = []
    add = put.append
    for src, x in sorted(by_src.items()):
        if x.__class__ is bytes:
            add((src, x))
            continue
        for dst in (sorted(x) if len(x) > 1 else x):
            (drop if x[dst] is None else put).append((src, dst))
    if put:
        ws.out_puts[edge] = put
    if drop:
        ws.out_dels[edge] = drop
    inn = []
    add = inn.append
    # A pending in-entry's value is its out-entry's: present unless that holds None.
    for dst, y in sorted(seg.inn[edge].items()):
        if y.__class__ is bytes:
            x = by_src[y]
            if x.__class__ is bytes or x[dst] is not None:
                add((dst, y))
            continue
        for src in sorted(y):
            x = by_src[src]
            if x.__class__ is bytes or x[dst] is not None:
                add((dst, src))
    if inn:
        ws.in_puts[edge] = inn
    if edge in PROPS_EDGES:
        eb = EDGE_BYTES[edge]
        for src, dst in put:
            value = seg.pending(src, edge, dst)
            if value is True:
                ws.eprops_dels.append(src + eb + dst)
            else:
                ws.eprops_puts.append((src + eb + dst, encode_props(value)))
        ws.eprops_dels.extend(src + eb + dst for src, dst in drop)


def write_segment(store: GraphStore, ws: WriteSet, *, after: int, checkpoint: int,
                  poisons: Sequence[PoisonEvent] = (), changes: bool = False) -> int:
    """Write ``ws``, the poison records and the checkpoint in one transaction.

    With ``changes``, the segment's coalesced change records
    (:mod:`.changes`) go to the outbox in the same transaction; returns how
    many (0 without).

    Re-reads the checkpoint inside the transaction: a segment folded from
    another checkpoint than ``after`` (another writer went on meanwhile) is
    refused rather than applied twice. The map
    doubles and the write is retried when it is full.
    """
    records = [(p.position, {"event_id": p.event_id, "type": p.event_type, "reason": p.reason,
                             "at": time.time()}) for p in poisons]
    # A segment's puts land all over a file larger than the budget: unmap as they go.
    release = data_file_bytes(store) > MAPPED_BUDGET
    while True:
        try:
            with store.env.write() as txn:
                found = store.meta_int(txn, CHECKPOINT)
                if found != after:
                    raise StoreError(f"{store.path} moved from position {after} to {found} while"
                                     " a segment was folded - is another writer running?")
                written = 0
                if changes:
                    written = append_records(store, txn, list(coalesced_changes(
                        store, txn, ws, first=after + 1, last=checkpoint)))
                store.write(txn, ws, checkpoint=checkpoint, poisons=records,
                            release_pages=release)
                txn.commit()
            break
        except lmdb.MapFullError:
            size = store.env.grow()
            log.info("projection map grown", extra={"path": str(store.path), "map_size": size})
        except lmdb.BadValsizeError:
            raise  # an event's key or value LMDB cannot hold: the fold pins the event
        except lmdb.Error as e:
            raise StoreError(f"LMDB failed writing {store.path}: {e}") from e
    store.tombs.update(ws.tombs)
    if release or mapped_bytes() > MAPPED_BUDGET:
        store.env.release_pages()
    return written
