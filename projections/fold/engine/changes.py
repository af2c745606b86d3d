"""Coalesced change records: what a segment changed, net, as outbox records.

A projector far behind the head folds large segments (:mod:`.run`) instead
of applying small batches. Its change records are then not one per event
but one per thing the segment changed, computed from the segment's write
set against the store it is about to be written to, in the same write
transaction and before the write:

1. ``edge_removed`` for edges the store holds that the segment removes,
2. ``node_deleted`` for stored nodes it deletes (with their stored state),
   ``node_upserted`` for nodes whose value differs (the full new state;
   ``changed`` names the properties that differ, absent for a new node),
3. ``edge_added`` / ``edge_updated`` for edges the store does not hold, or
   whose properties differ.

Something created and deleted inside one segment leaves no record; a
property set and set back leaves none either. Each record carries
``coalesced: true``, ``first_position`` (the segment's first log position)
and ``position`` (its last): it stands for every event in between. Applied
in order to a copy of the graph at ``first_position - 1``, the records give
the graph at ``position``, which is what the README's subscriber rules ask
of any change.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lmdb

from projections.model.keys import format_key, key_type
from projections.model.ontology import EDGE_TYPES
from projections.store.graph import GraphStore
from projections.store.writeset import EDGE_BYTES, PROPS_EDGES, WriteSet, decode_props

__all__ = ["coalesced_changes"]

_EDGE_NAMES = {e.code: e.name for e in EDGE_TYPES}


def coalesced_changes(store: GraphStore, txn: lmdb.Transaction, ws: WriteSet, *, first: int,
                      last: int) -> Iterator[dict[str, Any]]:
    """Records (without ``seq``) for what ``ws`` changes in ``store`` as ``txn`` sees it.

    Call it before ``ws`` is written in ``txn``: it compares with what is stored.
    """
    env = store.env
    stamp = {"position": last, "first_position": first, "coalesced": True}
    for code, pairs in ws.out_dels.items():
        cursor = txn.cursor(env.out[code])
        name = _EDGE_NAMES[code]
        for src, dst in pairs:
            if cursor.set_key_dup(src, dst):
                yield {"kind": "edge_removed", "src": format_key(src), "edge": name,
                       "dst": format_key(dst), **stamp}
    for code, keys in ws.node_dels.items():
        db = env.nodes[code]
        for key in keys:
            before = txn.get(key, db=db)
            if before is not None:
                yield {"kind": "node_deleted", "node": format_key(key),
                       "node_type": key_type(key).name, "props": decode_props(before), **stamp}
    for code, items in ws.nodes.items():
        db = env.nodes[code]
        for key, raw in items:
            before = txn.get(key, db=db)
            if before == raw:
                continue
            props = decode_props(raw)
            record = {"kind": "node_upserted", "node": format_key(key),
                      "node_type": key_type(key).name, "props": props, **stamp}
            if before is not None:
                old = decode_props(before)
                changed = sorted(k for k in props.keys() | old.keys() if props.get(k) != old.get(k))
                if not changed:
                    continue
                record["changed"] = changed
            yield record
    new_props = dict(ws.eprops_puts) if ws.eprops_puts else {}
    for code, pairs in ws.out_puts.items():
        cursor = txn.cursor(env.out[code])
        name = _EDGE_NAMES[code]
        with_props = code in PROPS_EDGES
        suffix = EDGE_BYTES[code]
        for src, dst in pairs:
            existed = cursor.set_key_dup(src, dst)
            props: dict = {}
            if with_props:
                pkey = src + suffix + dst
                raw = new_props.get(pkey)
                props = decode_props(raw) if raw else {}
                if existed:
                    before = txn.get(pkey, db=env.eprops)
                    if (decode_props(before) if before else {}) == props:
                        continue
            elif existed:
                continue
            record = {"kind": "edge_updated" if existed else "edge_added", "src": format_key(src),
                      "edge": name, "dst": format_key(dst), **stamp}
            if props:
                record["props"] = props
            yield record
