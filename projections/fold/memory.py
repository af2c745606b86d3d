"""The in-memory twin of the LMDB store, for fast tests of the apply semantics.

:class:`MemoryGraph` is a :class:`~projections.fold.overlay.StateReader` that
applies :class:`~projections.store.writeset.WriteSet` s the way
:meth:`projections.store.graph.GraphStore.write` does, in dicts. The property
tests run thousands of random event sequences through it, and a
conformance test checks that it and the LMDB store end in the same graph.
"""

from __future__ import annotations

from typing import Iterable

from projections.fold.apply import apply
from projections.fold.overlay import Overlay
from projections.store.graph import IN_EDGES_OF, OUT_EDGES_OF
from projections.store.writeset import EDGE_BYTES, WriteSet, decode_props, encode_props

__all__ = ["MemoryGraph"]


class MemoryGraph:
    """A whole graph in dicts: nodes, adjacency, edge props, indexes, lookups, tombs."""

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}
        self.out: dict[int, dict[bytes, set[bytes]]] = {}
        self.inn: dict[int, dict[bytes, set[bytes]]] = {}
        self.eprops: dict[bytes, bytes] = {}
        self.idx: dict[bytes, set[bytes]] = {}
        self.lookups: dict[bytes, bytes] = {}
        self.tombs: set[bytes] = set()
        self.checkpoint = 0

    # -- StateReader ---------------------------------------------------------

    def node(self, key: bytes) -> dict | None:
        raw = self.nodes.get(key)
        return None if raw is None else decode_props(raw)

    def is_tomb(self, key: bytes) -> bool:
        return key in self.tombs

    def out_edges(self, key: bytes, edge: int | None = None) -> list[tuple[int, bytes]]:
        codes = OUT_EDGES_OF.get(key[0], ()) if edge is None else (edge,)
        return [(code, other) for code in codes
                for other in sorted(self.out.get(code, {}).get(key, ()))]

    def in_edges(self, key: bytes) -> list[tuple[int, bytes]]:
        return [(code, other) for code in IN_EDGES_OF.get(key[0], ())
                for other in sorted(self.inn.get(code, {}).get(key, ()))]

    def has_edge(self, src: bytes, edge: int, dst: bytes) -> bool:
        return dst in self.out.get(edge, {}).get(src, ())

    def edge_props(self, src: bytes, edge: int, dst: bytes) -> dict | None:
        raw = self.eprops.get(src + EDGE_BYTES[edge] + dst)
        return None if raw is None else decode_props(raw)

    def lookup(self, key: bytes) -> bytes | None:
        return self.lookups.get(key)

    # -- writing -------------------------------------------------------------

    def write(self, ws: WriteSet, checkpoint: int) -> None:
        """Apply a write set (the twin of ``GraphStore.write``)."""
        for items in ws.node_dels.values():
            for key in items:
                self.nodes.pop(key, None)
        for items in ws.nodes.values():
            self.nodes.update(items)
        for items in ws.stubs.values():
            for key, value in items:
                self.nodes.setdefault(key, value)
        for items in ws.creates.values():
            for key, value in items:
                stored = self.nodes.get(key)
                self.nodes[key] = value if stored is None else encode_props(
                    {**decode_props(value), **decode_props(stored)})
        self.tombs.update(ws.tombs)
        for code, items in ws.out_dels.items():
            for node, other in items:
                self.out.get(code, {}).get(node, set()).discard(other)
                self.inn.get(code, {}).get(other, set()).discard(node)
        for table, puts in ((self.out, ws.out_puts), (self.inn, ws.in_puts)):
            for code, items in puts.items():
                by_node = table.setdefault(code, {})
                for node, other in items:
                    by_node.setdefault(node, set()).add(other)
        for key in ws.eprops_dels:
            self.eprops.pop(key, None)
        self.eprops.update(ws.eprops_puts)
        for key, node in ws.idx_dels:
            self.idx.get(key, set()).discard(node)
        for key, node in ws.idx_puts:
            self.idx.setdefault(key, set()).add(node)
        for key in ws.lookup_dels:
            self.lookups.pop(key, None)
        self.lookups.update(ws.lookup_puts)
        self.checkpoint = checkpoint

    def apply_events(self, events: Iterable, *, precise: bool = False) -> list:
        """Apply events in one batch; returns the change records (precise mode)."""
        overlay = Overlay(self, precise=precise)
        position = self.checkpoint
        for event in events:
            position += 1
            overlay.apply(apply(event), position)
        ws = overlay.finish()
        self.write(ws, position)
        return ws.changes

    def edges(self) -> set[tuple[bytes, int, bytes]]:
        """Every edge as ``(src, edge code, dst)``."""
        return {(src, code, dst) for code, by_node in self.out.items()
                for src, dsts in by_node.items() for dst in dsts}
