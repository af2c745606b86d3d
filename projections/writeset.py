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
    Three writers apply it: ``GraphStore.write``, ``MemoryGraph.write`` (the
    tests' twin) and ``bench/_peers_es.py`` (the eventsourcing peer's view);
    a new field needs all three.
    """

    nodes: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    stubs: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    #: blind creations: put if absent, else their properties go beneath the stored ones
    creates: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
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
    """Turn an overlay's final state into sorted writes.

    Tables come out sorted by walking sorted node keys, and per node the
    sorted keys at the other end (C-level sorts of distinct byte strings):
    no sort of large lists of tuples, whose comparisons cost several times more.
    """
    from .overlay import TOMB, _Stub

    ws = WriteSet(changes=ov.changes)
    nodes = ov.nodes
    for key in sorted(ov.dirty):
        v = nodes[key]
        code = key[0]
        if v.__class__ is dict:
            ws.nodes.setdefault(code, []).append((key, encode_props(v)))
        elif v.__class__ is _Stub:
            (ws.creates if v.beneath else ws.stubs).setdefault(code, []).append(
                (key, encode_props(v.props)))
        elif v is TOMB:
            ws.node_dels.setdefault(code, []).append(key)
            ws.tombs.append(key)
    for edge, by_src in enumerate(ov.out):
        if by_src:
            _adjacency(ws, edge, by_src, ws.out_puts, ws.out_dels)
    for edge, by_dst in enumerate(ov.inn):
        if by_dst:
            _adjacency(ws, edge, by_dst, ws.in_puts, None)
    for (k, node), present in sorted(ov.idx.items()):
        (ws.idx_puts if present else ws.idx_dels).append((k, node))
    lookups = ov.lookups
    for k in sorted(ov.lookups_dirty):
        node = lookups[k]
        if node is None:
            ws.lookup_dels.append(k)
        else:
            ws.lookup_puts.append((k, node))
    ws.eprops_puts.sort()
    ws.eprops_dels.sort()
    return ws


def _adjacency(ws: WriteSet, edge: int, pending: dict, puts: dict, dels: dict | None) -> None:
    """Sorted writes of one adjacency table: ``pending`` maps node -> other -> value.

    The out direction (``dels`` given) also lists removals, once for both
    directions, and the edge properties.
    """
    put, drop = [], []
    for node in sorted(pending):
        others = pending[node]
        for other in (sorted(others) if len(others) > 1 else others):
            (drop if others[other] is None else put).append((node, other))
    if put:
        puts[edge] = put
    if dels is None:  # the in direction: its removals are the out direction's
        return
    if drop:
        dels[edge] = drop
    if edge in _PROPS_EDGES:
        eb = EDGE_BYTES[edge]
        for src, dst in put:
            value = pending[src][dst]
            if value is True:
                ws.eprops_dels.append(src + eb + dst)
            else:
                ws.eprops_puts.append((src + eb + dst, encode_props(value)))
        ws.eprops_dels.extend(src + eb + dst for src, dst in drop)
