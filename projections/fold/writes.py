"""An overlay's final state as a :class:`~projections.store.writeset.WriteSet`: sorted writes per table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from projections.fold.slots import TOMB, Stub
from projections.store.writeset import EDGE_BYTES, PROPS_EDGES, WriteSet, encode_props

if TYPE_CHECKING:  # pragma: no cover
    from projections.fold.overlay import Overlay

__all__ = ["build_writeset"]


def build_writeset(ov: "Overlay") -> WriteSet:
    """Turn an overlay's final state into sorted writes.

    Tables come out sorted by walking sorted node keys, and per node the
    sorted keys at the other end (C-level sorts of distinct byte strings):
    no sort of large lists of tuples, whose comparisons cost several times more.
    """
    ws = WriteSet(changes=ov.changes)
    nodes = ov.nodes
    for key in sorted(ov.dirty):
        v = nodes[key]
        code = key[0]
        if v.__class__ is dict:
            ws.nodes.setdefault(code, []).append((key, encode_props(v)))
        elif v.__class__ is Stub:
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
        elif node.__class__ is dict:  # a node's stamp map (projections.fold.stamps)
            ws.lookup_puts.append((k, encode_props(node)))
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
    if edge in PROPS_EDGES:
        eb = EDGE_BYTES[edge]
        for src, dst in put:
            value = pending[src][dst]
            if value is True:
                ws.eprops_dels.append(src + eb + dst)
            else:
                ws.eprops_puts.append((src + eb + dst, encode_props(value)))
        ws.eprops_dels.extend(src + eb + dst for src, dst in drop)
