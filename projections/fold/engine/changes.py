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

Stored property bytes go into the records as they are (``msgspec.Raw``: the
outbox's msgpack is the store's), decoded only to name what ``changed``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import lmdb
from msgspec import Raw

from projections.changes.diff import changed_properties
from projections.model.keys import format_key, key_type
from projections.model.ontology import EDGE_TYPES
from projections.store.graph import GraphStore
from projections.store.writeset import EDGE_BYTES, PROPS_EDGES, WriteSet, decode_props, encode_props

__all__ = ["coalesced_changes"]

_EDGE_NAMES = {e.code: e.name for e in EDGE_TYPES}
_EMPTY = encode_props({})


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
                       "node_type": key_type(key).name, "props": Raw(before), **stamp}
    for code, items in ws.nodes.items():
        db = env.nodes[code]
        for key, raw in items:
            before = txn.get(key, db=db)
            if before == raw:
                continue
            record = {"kind": "node_upserted", "node": format_key(key),
                      "node_type": key_type(key).name, "props": Raw(raw), **stamp}
            if before is not None:
                changed = changed_properties(decode_props(before), decode_props(raw))
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
            raw = None
            if with_props:
                pkey = src + suffix + dst
                raw = _none_if_empty(new_props.get(pkey))
                if existed and _none_if_empty(txn.get(pkey, db=env.eprops)) == raw:
                    continue  # canonical bytes: equal properties, equal bytes
            elif existed:
                continue
            record = {"kind": "edge_updated" if existed else "edge_added", "src": format_key(src),
                      "edge": name, "dst": format_key(dst), **stamp}
            if raw is not None:
                record["props"] = Raw(raw)
            yield record


def _none_if_empty(raw: bytes | None) -> bytes | None:
    return None if raw is None or raw == _EMPTY else raw
