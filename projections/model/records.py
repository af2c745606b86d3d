"""Graph-change records: what the outbox holds and downstream receives.

While a version is active, every batch writes one record per change into the
version's ``outbox`` table, in the same LMDB transaction as the change itself
(DESIGN invariant 6), keyed by a dense per-version sequence (8 bytes,
big-endian). A publisher reads the table in key order and publishes record
``n`` with ``Nats-Msg-Id = graph@v<version>:<n>``. A version being rebuilt
writes none (invariant 8); its promotion writes one ``rebuilt`` record.

Records the change publisher has had acknowledged may be deleted (oldest
first); ``meta[OUTBOX_PRUNED]`` is then the last sequence deleted, so a
reader that finds nothing at ``watermark + 1`` knows why.

A record is a msgpack map::

    {"seq": 17, "position": 1234, "kind": "node_upserted",
     "node": "issue:gitlab:99", "node_type": "Issue",
     "props": {...all properties after the change...}, "changed": ["state", ...]}
    {"seq": 18, "position": 1234, "kind": "node_deleted", "node": ..., "node_type": ...,
     "props": {...properties before...}}
    {"seq": 19, "position": 1234, "kind": "edge_added" | "edge_updated" | "edge_removed",
     "src": "issue:gitlab:99", "edge": "HAS_LABEL", "dst": "label:gitlab:4", "props": {...}}
    {"seq": 1, "kind": "rebuilt", "projection": "graph", "version": 2, "previous": 1,
     "position": 1000000, "digest": "..."}
    {"seq": 9, "kind": "synced", "position": 1000000, "previous": 1, "changes": 7,
     "resync": False, "digest": "..."}
"""

from __future__ import annotations

from typing import Any, Iterable

import msgspec

from projections.model.keys import format_key, key_type, pack_int
from projections.model.ontology import EDGE_TYPES

__all__ = ["KINDS", "encode_changes", "decode_record", "rebuilt_record", "synced_record"]

#: change kind code (see ``overlay``) -> name
KINDS = ("node_upserted", "node_deleted", "edge_added", "edge_updated", "edge_removed")
_EDGE_NAMES = {e.code: e.name for e in EDGE_TYPES}
_encode = msgspec.msgpack.Encoder().encode


def encode_changes(changes: Iterable[tuple], first_seq: int) -> list[tuple[bytes, bytes]]:
    """Outbox ``(key, value)`` rows for overlay change tuples, from ``first_seq`` on."""
    rows = []
    seq = first_seq
    for position, kind, key, edge, dst, props, changed in changes:
        record: dict[str, Any] = {"seq": seq, "position": position, "kind": KINDS[kind]}
        if kind <= 1:
            record["node"] = format_key(key)
            record["node_type"] = key_type(key).name
            record["props"] = props
            if changed is not None:
                record["changed"] = changed
        else:
            record["src"] = format_key(key)
            record["edge"] = _EDGE_NAMES[edge]
            record["dst"] = format_key(dst)
            if props:
                record["props"] = props
        rows.append((pack_int(seq), _encode(record)))
        seq += 1
    return rows


def rebuilt_record(seq: int, *, projection: str, version: int, previous: int | None,
                   position: int, digest: str | None) -> tuple[bytes, bytes]:
    """The one outbox row a promoted version starts with."""
    return pack_int(seq), _encode({
        "seq": seq, "kind": "rebuilt", "projection": projection, "version": version,
        "previous": previous, "position": position, "digest": digest,
    })


def synced_record(seq: int, *, position: int, previous: int | None, changes: int, resync: bool,
                  digest: str | None) -> tuple[bytes, bytes]:
    """The outbox row that closes a version change (after the diff, or instead of it: ``resync``)."""
    return pack_int(seq), _encode({
        "seq": seq, "kind": "synced", "position": position, "previous": previous,
        "changes": changes, "resync": resync, "digest": digest,
    })


def decode_record(value: bytes) -> dict:
    """One outbox record as a dict."""
    return msgspec.msgpack.decode(value)
