"""A batch's writes, sorted per sub-database, ready for ``putmulti``.

Built from an :class:`~projections.overlay.Overlay` by :func:`build_writeset`;
the store writes it in one LMDB transaction with the checkpoint. Every key
appears at most once per table, so puts and deletes commute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec

from .ontology import EDGE_TYPES

if TYPE_CHECKING:  # pragma: no cover
    from .overlay import Change, Overlay

__all__ = ["WriteSet", "build_writeset", "encode_props", "decode_props", "EDGE_BYTES"]

_encoder = msgspec.msgpack.Encoder(order="sorted")
_decoder = msgspec.msgpack.Decoder(dict)
#: canonical bytes of a property dict (sorted keys: equal content, equal bytes)
encode_props = _encoder.encode
decode_props = _decoder.decode

#: edge code -> its one-byte suffix in adjacency keys
EDGE_BYTES = {e.code: bytes([e.code]) for e in EDGE_TYPES}
_PROPS_EDGES = frozenset(e.code for e in EDGE_TYPES if e.props)


@dataclass
class WriteSet:
    """Sorted puts and deletes per table.

    Edge puts are ``(node, other)`` pairs grouped by edge code (one table per
    edge type and direction); an edge removal is listed once, in ``out_dels``.
    """

    nodes: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    stubs: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    node_dels: dict[int, list[bytes]] = field(default_factory=dict)
    tombs: list[bytes] = field(default_factory=list)
    out_puts: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    in_puts: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    out_dels: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    eprops_puts: list[tuple[bytes, bytes]] = field(default_factory=list)
    eprops_dels: list[bytes] = field(default_factory=list)
    idx_puts: list[tuple[bytes, bytes]] = field(default_factory=list)
    idx_dels: list[tuple[bytes, bytes]] = field(default_factory=list)
    lookup_puts: list[tuple[bytes, bytes]] = field(default_factory=list)
    lookup_dels: list[bytes] = field(default_factory=list)
    changes: "list[Change]" = field(default_factory=list)


def build_writeset(ov: "Overlay") -> WriteSet:
    """Turn an overlay's final state into sorted writes."""
    from .overlay import TOMB, _Stub

    ws = WriteSet(changes=ov.changes)
    nodes = ov.nodes
    for key in ov.dirty:
        v = nodes[key]
        code = key[0]
        if v.__class__ is dict:
            ws.nodes.setdefault(code, []).append((key, encode_props(v)))
        elif v.__class__ is _Stub:
            ws.stubs.setdefault(code, []).append((key, encode_props(v.props)))
        elif v is TOMB:
            ws.node_dels.setdefault(code, []).append(key)
            ws.tombs.append(key)
    # One pass over the out-edges yields both directions: ``inn`` mirrors ``out``.
    out_puts, in_puts, out_dels = ws.out_puts, ws.in_puts, ws.out_dels
    eb = EDGE_BYTES
    for src, pairs in ov.out.items():
        for (edge, dst), value in pairs.items():
            if value is None:
                bucket = out_dels.get(edge)
                if bucket is None:
                    bucket = out_dels[edge] = []
                bucket.append((src, dst))
            else:
                bucket = out_puts.get(edge)
                if bucket is None:
                    bucket = out_puts[edge] = []
                    in_puts[edge] = []
                bucket.append((src, dst))
                in_puts[edge].append((dst, src))
            if edge in _PROPS_EDGES:
                k = src + eb[edge] + dst
                if value is None or value is True:
                    ws.eprops_dels.append(k)
                else:
                    ws.eprops_puts.append((k, encode_props(value)))
    for (k, node), present in ov.idx.items():
        (ws.idx_puts if present else ws.idx_dels).append((k, node))
    for k in ov.lookups_dirty:
        node = ov.lookups[k]
        if node is None:
            ws.lookup_dels.append(k)
        else:
            ws.lookup_puts.append((k, node))
    for table in (ws.nodes, ws.stubs, ws.node_dels, ws.out_puts, ws.in_puts, ws.out_dels):
        for items in table.values():
            items.sort()
    for items in (ws.tombs, ws.eprops_puts, ws.eprops_dels, ws.idx_puts, ws.idx_dels,
                  ws.lookup_puts, ws.lookup_dels):
        items.sort()
    return ws
