"""Read-only queries over the active version of the graph projection.

``GraphReader(projections_dir)`` follows the ACTIVE pointer and answers each
query from one LMDB read transaction: a consistent snapshot, never blocked by
the writer. Node ids are the text form of :mod:`projections.model.keys`
(``issue:gitlab:12``); :meth:`Snapshot.resolve` also accepts paths
(``gitlab:group/project``, ``gitlab:group/project#12``,
``gitlab:group/project!3``).

Queries are meant to cost little more than the LMDB reads they need: a
switch of ACTIVE is noticed from mapped memory
(:mod:`projections.versions.pointer`), plans are cached per version
(:mod:`.snapshot`), and results are msgspec Structs (:mod:`.results`).

List answers are pages (:class:`~.results.Page`: total, truncated, the
cursor to the next page) that resume from the last LMDB key (:mod:`.paging`).
The realistic questions (open issues with a label, what closed an issue,
who authored what, what an issue blocks) live in :mod:`.questions`.
"""

from __future__ import annotations

import logging
import threading
from itertools import islice
from pathlib import Path
from typing import Any

from projections.errors import QueryError, UnknownNode
from projections.model.indexing import index_prefix
from projections.model.keys import (
    CODES,
    COMMIT_REF,
    TAGS,
    commit_lookup,
    format_key,
    format_keys,
    known_id,
    parse_id,
    source_prefix,
)
from projections.model.ontology import EDGE_TYPES, INDEXES, NAME, NODE_TYPES, edge_type, node_type
from projections.read.paging import (
    COUNT_MAX,
    check_limit,
    count_bounded,
    decode_cursor,
    encode_cursor,
    fingerprint,
    is_cursor,
)
from projections.read.results import Neighbor, Node, Page, PathResult
from projections.read.snapshot import OpenVersion, Snapshot, edge_position
from projections.read.traverse import hops, shortest_path
from projections.store.graph import CHECKPOINT, GraphStore
from projections.store.writeset import decode_props
from projections.versions.catalog import Versions
from projections.versions.pointer import Pointer, read_pointer

log = logging.getLogger(__name__)

__all__ = ["CURSOR_FIND", "CURSOR_NEIGHBORS", "PATH_MAX_NODES", "GraphReader"]

#: cursor kinds (:mod:`.paging`) of the reader's pages
CURSOR_NEIGHBORS, CURSOR_FIND = 1, 2

#: default bound on the nodes a shortest-path search visits before it gives up
PATH_MAX_NODES = 1_000_000

_EDGE_NAME = {e.code: e.name for e in EDGE_TYPES}
PROPS_EDGES = frozenset(e.code for e in EDGE_TYPES if e.props)
_TYPE_NAME = {t.code: t.name for t in NODE_TYPES}
_DIRECTIONS = ("out", "in", "both")
_TAGS = set(TAGS.values()) | {t.lower() for t in TAGS} | {"mr", "branch", "tag"}


def _edge_codes(edges: str | list[str] | None) -> frozenset[int] | None:
    if edges is None:
        return None
    names = [edges] if isinstance(edges, str) else list(edges)
    return frozenset(edge_type(n).code for n in names if n)


def _check_direction(direction: str) -> None:
    if direction not in _DIRECTIONS:
        raise QueryError(f"direction must be one of {', '.join(_DIRECTIONS)}, got {direction!r}")


#: answers larger than this are formatted without format_key's cache (they would evict it)
_UNCACHED_FORMAT = 8192


def _format_many(keys: Any) -> list[str]:
    """Text ids of a traversal's nodes: cached one by one when few, in bulk when many."""
    if len(keys) > _UNCACHED_FORMAT:
        return format_keys(keys)
    return [format_key(k) for k in keys]


class GraphReader:
    """Queries over the active version (or a fixed ``version``) of a projection.

    Safe to share between threads: each query runs in its own snapshot.
    """

    def __init__(self, projections_dir: str | Path, name: str = NAME, *,
                 version: int | None = None) -> None:
        self.versions = Versions(projections_dir, name)
        self.fixed = version
        self._open: OpenVersion | None = None
        #: stores switched away from: a query of another thread may still be
        #: reading one, so each is closed once its environment is idle
        self._retired: list[GraphStore] = []
        self._switching = threading.Lock()

    def close(self) -> None:
        """Release the open version."""
        with self._switching:
            if self._open is not None:
                self._open.release_pointer()
                self._open.store.close()
                self._open = None
            for store in self._retired:
                store.close()
            self._retired.clear()

    def __enter__(self) -> "GraphReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def version(self) -> int:
        """The version queries are answered from."""
        return self._current().number

    def _current(self) -> OpenVersion:
        opened = self._open
        if opened is not None and opened.unchanged():
            return opened
        with self._switching:
            opened = self._open
            if opened is not None and opened.unchanged():
                return opened
            return self._switch(opened)

    def _switch(self, old: OpenVersion | None) -> OpenVersion:
        """Open the version ACTIVE (or ``fixed``) names; reuse ``old``'s store if the same."""
        if self.fixed is None:
            pointer = read_pointer(self.versions)
        else:
            pointer = Pointer(None, 0, self.fixed, None, None)
        try:
            if old is not None and old.number == pointer.version:
                store = old.store
            else:
                self.versions.info(pointer.version)  # raises UnknownVersion with the versions on disk
                store = GraphStore(self.versions.path(pointer.version))
        except BaseException:
            pointer.close()
            raise
        self._open = OpenVersion(store, pointer)
        if old is not None:
            old.release_pointer()
            if old.store is not store:
                self._retired.append(old.store)
                log.info("queries follow the active version", extra={
                    "projection": self.versions.name, "version": pointer.version,
                    "previous": old.number})
            self._close_idle_retired()
        return self._open

    def _close_idle_retired(self) -> None:
        """Close the stores retired before the latest one whose environment no query uses.

        The latest retired store stays open for a query that took the old
        version just before the switch and has not begun its transaction yet.
        """
        keep = self._retired[-1:]
        for store in self._retired[:-1]:
            if store.env.gate.idle():
                store.close()
            else:
                keep.insert(-1, store)
        self._retired = keep

    def snapshot(self) -> Snapshot:
        """One consistent read transaction over the current version (``with`` it)."""
        return Snapshot(self._current())

    # -- queries -----------------------------------------------------------

    def resolve(self, ref: str) -> bytes:
        """A node key from an id or a path reference (see :meth:`Snapshot.resolve`)."""
        with self.snapshot() as snap:
            return snap.resolve(ref)

    def node(self, ref: str) -> Node:
        """A node with its properties; raises :class:`UnknownNode`.

        A node id (not a path) is answered in a transaction of its own,
        without a :class:`Snapshot`: the lookup is cheap enough that the
        snapshot's frames showed up in it.
        """
        found = known_id(ref)
        if found is None:
            head = ref.partition(":")[0]
            if head not in _TAGS and head.lower() not in _TAGS:
                with self.snapshot() as snap:
                    return snap.node(snap.resolve(ref))
            found = parse_id(ref)
        key: bytes | None
        key, node_id = found
        env = self._current().store.env
        txn = env.begin_read()
        try:
            if key[0] == COMMIT_REF:
                key = txn.get(commit_lookup(key), db=env.lookup)
            raw = None if key is None else txn.get(key, db=env.nodes[key[0]])
        finally:
            env.end_read(txn)
        if raw is None:
            raise UnknownNode(f"no node {node_id} in the graph")
        return Node(node_id, _TYPE_NAME[key[0]], decode_props(raw))

    def neighbors(self, ref: str, *, edges: str | list[str] | None = None,
                  direction: str = "both", limit: int = 100, with_props: bool = False
                  ) -> list[Neighbor]:
        """Edges at a node, filtered by edge type and direction, at most ``limit``."""
        _check_direction(direction)
        codes = _edge_codes(edges)
        out: list[Neighbor] = []
        with self.snapshot() as snap:
            key = snap.require(snap.resolve(ref))
            for code, d, db in snap.plan(direction, codes)[key[0]]:
                if len(out) >= limit:
                    break
                c = snap.cursor(db)
                if not c.set_key(key):
                    continue
                name = _EDGE_NAME[code]
                others = list(islice(c.iternext_dup(), limit - len(out)))
                if with_props and code in PROPS_EDGES:
                    out += [Neighbor(name, d, format_key(o), snap.edge_props(
                        *((key, code, o) if d == "out" else (o, code, key)))) for o in others]
                else:
                    out += [Neighbor(name, d, format_key(o)) for o in others]
        return out

    def neighbor_page(self, ref: str, *, edges: str | list[str] | None = None,
                      direction: str = "both", limit: int = 100, after: str | None = None,
                      with_props: bool = False) -> Page:
        """A page of :meth:`neighbors` (items are :class:`Neighbor`), with the exact total
        and the cursor to the next page (:mod:`.paging`); ``after`` is a previous page's ``next``.

        Order: edge table by table (the plan's order), others in key order.
        """
        _check_direction(direction)
        check_limit(limit)
        codes = _edge_codes(edges)
        with self.snapshot() as snap:
            key = snap.require(snap.resolve(ref))
            query = fingerprint(key, direction, None if codes is None else sorted(codes))
            position = None if not after else decode_cursor(after, CURSOR_NEIGHBORS, query)
            total = snap.edge_count(key, direction, codes)
            found = list(islice(snap.edges_after(key, direction, codes, position), limit + 1))
            more = len(found) > limit
            del found[limit:]
            items = []
            for code, d, other in found:
                props = None
                if with_props and code in PROPS_EDGES:
                    props = snap.edge_props(*((key, code, other) if d == "out" else (other, code, key)))
                items.append(Neighbor(_EDGE_NAME[code], d, format_key(other), props))
        cursor = None
        if more:
            code, d, other = found[-1]
            cursor = encode_cursor(CURSOR_NEIGHBORS, query, edge_position(code, d, other))
        return Page(items, cursor, total, False, more)

    def hops(self, ref: str, depth: int, *, edges: str | list[str] | None = None,
             direction: str = "both", max_nodes: int = 10_000) -> dict:
        """Nodes within ``depth`` hops: ``{"nodes": {id: distance}, "truncated": bool}``."""
        _check_direction(direction)
        codes = _edge_codes(edges)
        with self.snapshot() as snap:
            key = snap.require(snap.resolve(ref))
            found = hops(key, depth, snap.expander(direction, codes), max_nodes=max_nodes,
                         expand_level=snap.level_expander(direction, codes))
        return {"start": format_key(key), "depth": depth, "truncated": found.truncated,
                "count": len(found.nodes),
                "nodes": dict(zip(_format_many(found.nodes), found.nodes.values()))}

    def path(self, src_ref: str, dst_ref: str, *, edges: str | list[str] | None = None,
             directed: bool = False, max_depth: int = 6, max_nodes: int = PATH_MAX_NODES
             ) -> PathResult:
        """A shortest path of at most ``max_depth`` edges between two nodes.

        The search (bidirectional breadth-first) gives up after visiting
        ``max_nodes`` nodes; the result then says ``truncated`` rather than
        claiming there is no path.
        """
        if max_nodes < 1:
            raise QueryError(f"max_nodes must be at least 1, got {max_nodes}")
        codes = _edge_codes(edges)
        forward_direction = "out" if directed else "both"
        with self.snapshot() as snap:
            src = snap.require(snap.resolve(src_ref))
            dst = snap.require(snap.resolve(dst_ref))
            forward = snap.expander(forward_direction, codes)
            backward = snap.expander("in", codes) if directed else forward
            degree = snap.degree(forward_direction, codes)
            degrees = (degree, snap.degree("in", codes) if directed else degree)
            found = shortest_path(src, dst, forward, backward, max_depth=max_depth,
                                  max_nodes=max_nodes, degrees=degrees)
            steps = None if found.nodes is None else snap.steps(found.nodes, forward_direction, codes)
        return PathResult(steps, found.truncated, found.visited)

    def find(self, type_name: str, filters: dict[str, Any] | None = None, *,
             source: str | None = None, limit: int = 50, after: str | None = None,
             count_max: int = COUNT_MAX) -> Page:
        """Nodes of a type whose properties equal ``filters``, a page at a time, in key order.

        Uses the longest index whose leading fields are all filtered on, else
        scans the type; properties are always re-checked. ``after`` is a
        previous page's ``next`` (or, as before cursors, a node id). The total
        is exact when an index entry or the type's table answers it alone,
        else counted up to ``count_max`` (then a lower bound).
        """
        check_limit(limit)
        t = node_type(type_name)
        filters = dict(filters or {})
        unknown = [f for f in filters if f not in t.props]
        if unknown:
            raise QueryError(f"{t.name} has no property {unknown[0]!r} - it has: {', '.join(t.props)}")
        index = _best_index(t.name, filters)
        query = fingerprint(t.code, source, sorted(filters.items(), key=repr))
        items: list[Node] = []
        with self.snapshot() as snap:
            after_key: bytes | None = None
            if after:
                after_key = (decode_cursor(after, CURSOR_FIND, query) if is_cursor(after)
                             else snap.resolve(after))

            def candidates(start: bytes | None):
                if index is None:
                    keys = snap.type_scan(t.code, start)
                    if source is None:
                        return keys
                    prefix = CODES[t.name] + source_prefix(source)
                    return (k for k in keys if k.startswith(prefix))
                sources = [source] if source else _sources(snap, t.code)
                return (k for s in sources for k in snap.index_scan(_index_key(index, s, filters), start))

            def matching(keys):
                return keys if not filters else (k for k in keys if _matches(snap.props(k), filters))

            last = None
            for key in candidates(after_key):
                props = snap.props(key)
                if not _matches(props, filters):
                    continue
                if len(items) == limit:
                    break
                items.append(Node(format_key(key), t.name, props))
                last = key
            else:
                last = None
            more = last is not None
            cursor = encode_cursor(CURSOR_FIND, query, last) if more else None
            if index is None and not filters and source is None:
                total, lower = snap.txn.stat(snap.store.env.nodes[t.code])["entries"], False
            elif index is not None and set(filters) == set(index.fields):
                total, lower = _index_count(snap, index, filters, source, t.code), False
            else:
                total, lower = count_bounded(matching(candidates(None)), count_max)
        return Page(items, cursor, total, lower, more)

    def counts(self) -> dict:
        """Nodes and edges per type, and the version and checkpoint they describe."""
        with self.snapshot() as snap:
            counts = snap.store.counts(snap.txn)
            counts["position"] = snap.store.meta_int(snap.txn, CHECKPOINT)
        counts["version"] = snap.version
        return counts


def _best_index(type_name: str, filters: dict):
    """The index with the most fields, all of them filtered on (an exact key)."""
    best = None
    for index in INDEXES:
        if index.node_type == type_name and all(f in filters for f in index.fields):
            if best is None or len(index.fields) > len(best.fields):
                best = index
    return best


def _matches(props: dict | None, filters: dict) -> bool:
    return props is not None and all(props.get(f) == v for f, v in filters.items())


def _index_count(snap: Snapshot, index, filters: dict, source: str | None, code: int) -> int:
    """How many nodes an exact index entry holds, summed over the sources (O(1) each)."""
    c = snap.cursor(snap.store.env.idx)
    n = 0
    for s in [source] if source else _sources(snap, code):
        if c.set_key(_index_key(index, s, filters)):
            n += c.count()
    return n


def _index_key(index, source: str, filters: dict) -> bytes:
    return index_prefix(index, source_prefix(source), [filters[f] for f in index.fields])


def _sources(snap: Snapshot, code: int) -> list[str]:
    """The event sources with nodes of a type (skip-scan: one seek per source)."""
    found = []
    c = snap.cursor(snap.store.env.nodes[code])
    prefix = bytes([code])
    ok = c.set_range(prefix)
    while ok:
        k = c.key()
        end = k.index(0, 1)
        found.append(k[1:end].decode())
        ok = c.set_range(k[: end] + b"\x01")
    return found
