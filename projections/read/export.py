"""The whole graph as plain data, and a self-check of its derived tables.

``export(store)`` reads every node and edge of an LMDB store (or of a
:class:`~projections.fold.memory.MemoryGraph`) into a :class:`GraphDump` of text
ids: what tests compare against a reference model, and what an operator can
diff between two versions. ``check_derived`` verifies that the index and
lookup tables are exactly what the nodes imply.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from projections.fold.memory import MemoryGraph
from projections.model.indexing import index_keys, lookup_key
from projections.model.keys import CODES, format_key, key_type
from projections.model.ontology import EDGE_TYPES, NODE_TYPES
from projections.store.graph import GraphStore
from projections.store.writeset import EDGE_BYTES, decode_props

__all__ = ["GraphDump", "export", "check_derived"]

_EDGE_NAME = {e.code: e.name for e in EDGE_TYPES}
_COMMIT = CODES["Commit"][0]


def _commit_lookup(key: bytes) -> bytes:
    end = key.index(0, 1) + 1
    return b"h" + key[1:end] + key[end + 8 :]


@dataclass
class GraphDump:
    """Nodes ``id -> (type, props)`` and edges ``(src, EDGE, dst) -> props or None``."""

    nodes: dict[str, tuple[str, dict]] = field(default_factory=dict)
    edges: dict[tuple[str, str, str], dict | None] = field(default_factory=dict)
    tombs: set[str] = field(default_factory=set)


def _raw(source: GraphStore | MemoryGraph):
    """(node key -> props bytes, [(src, code, dst)], eprops, idx pairs, lookups, tombs)."""
    if isinstance(source, MemoryGraph):
        return (dict(source.nodes), sorted(source.edges()), dict(source.eprops),
                {(k, n) for k, ns in source.idx.items() for n in ns}, dict(source.lookups),
                set(source.tombs))
    env = source.env
    with env.read() as txn:
        nodes = {}
        for t in NODE_TYPES:
            nodes.update(txn.cursor(env.nodes[t.code]).iternext())
        edges = [(src, e.code, dst) for e in EDGE_TYPES for src, dst in txn.cursor(env.out[e.code])]
        reverse = {(src, e.code, dst) for e in EDGE_TYPES for dst, src in txn.cursor(env.inn[e.code])}
        if reverse != set(edges):
            raise AssertionError(
                f"adjacency directions disagree: {len(set(edges) - reverse)} out-only,"
                f" {len(reverse - set(edges))} in-only edges"
            )
        eprops = dict(txn.cursor(env.eprops).iternext())
        idx = set(txn.cursor(env.idx).iternext())
        lookups = dict(txn.cursor(env.lookup).iternext())
        tombs = set(txn.cursor(env.tomb).iternext(values=False))
    return nodes, edges, eprops, idx, lookups, tombs


def export(source: GraphStore | MemoryGraph) -> GraphDump:
    """Every node and edge of ``source`` as plain data."""
    nodes, edges, eprops, _, _, tombs = _raw(source)
    dump = GraphDump()
    for key, raw in nodes.items():
        dump.nodes[format_key(key)] = (key_type(key).name, decode_props(raw))
    for src, code, dst in edges:
        raw = eprops.get(src + EDGE_BYTES[code] + dst)
        dump.edges[(format_key(src), _EDGE_NAME[code], format_key(dst))] = (
            decode_props(raw) if raw is not None else None)
    dump.tombs = {format_key(k) for k in tombs}
    return dump


def check_derived(source: GraphStore | MemoryGraph, *, strict_lookups: bool = True) -> list[str]:
    """Problems with the derived tables (empty when they match the nodes).

    ``strict_lookups`` also requires every lookup a node implies to point at
    it; turn it off for graphs where two nodes claim one name (the last
    writer wins there).
    """
    nodes, edges, eprops, idx, lookups, tombs = _raw(source)
    problems = []
    expected_idx = set()
    expected_lookups = {}
    for key, raw in nodes.items():
        props = decode_props(raw)
        expected_idx.update((k, key) for k in index_keys(key, props))
        lk = lookup_key(key, props)
        if lk is not None:
            expected_lookups[lk] = key
        if key[0] == _COMMIT:
            expected_lookups[_commit_lookup(key)] = key
        if key in tombs:
            problems.append(f"{format_key(key)} is both a node and a tombstone")
    if idx != expected_idx:
        problems.append(f"index: {len(idx - expected_idx)} stale, {len(expected_idx - idx)} missing")
    # A commit's key is reserved at first sight even if no node follows (a link
    # the other end of which was deleted): ``h`` lookups may outlive nodes.
    reserved = {k: v for k, v in lookups.items() if k[:1] == b"h" and k not in expected_lookups}
    if strict_lookups and {k: v for k, v in lookups.items() if k not in reserved} != expected_lookups:
        problems.append(f"lookups differ: {set(lookups.items()) ^ set(expected_lookups.items())}")
    for k, node in lookups.items():
        if node not in nodes and k not in reserved:
            problems.append(f"lookup {k!r} points at missing node {format_key(node)}")
    for src, code, dst in edges:
        for end in (src, dst):
            if end not in nodes:
                problems.append(f"edge {_EDGE_NAME[code]} has a missing endpoint {format_key(end)}")
    return problems
