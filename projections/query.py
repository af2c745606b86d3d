"""Read-only queries over the active version of the graph projection.

``GraphReader(projections_dir)`` follows the ACTIVE pointer (re-checked by
``stat`` on every query, so a promotion or rollback is picked up at once) and
answers each query from one LMDB read transaction: a consistent snapshot,
never blocked by the writer. Node ids are the text form of
:mod:`projections.keys` (``issue:gitlab:12``); :meth:`GraphReader.resolve`
also accepts paths (``gitlab:group/project``, ``gitlab:group/project#12``,
``gitlab:group/project!3``).

The realistic questions (open issues with a label, what closed an issue,
who authored what, what an issue blocks) live in :mod:`.questions`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import lmdb

from .errors import NoActiveVersion, QueryError, UnknownNode
from .indexing import child_lookup, iid_lookup, root_lookup
from .keys import CODES, COMMIT_REF, TAGS, commit_lookup, format_key, key_int, key_type, parse_key
from .keys import source_prefix
from .ontology import EDGE_TYPES, INDEXES, NAME, edge_type, node_type
from .store import CHECKPOINT, IN_EDGES_OF, OUT_EDGES_OF, GraphStore
from .traverse import Step, hops, shortest_path
from .versions import Versions
from .writeset import decode_props

__all__ = ["GraphReader", "Node", "Neighbor", "Page", "PathResult", "Snapshot"]

_EDGE_NAME = {e.code: e.name for e in EDGE_TYPES}
_DIRECTIONS = ("out", "in", "both")
_TAGS = set(TAGS.values()) | {t.lower() for t in TAGS} | {"mr", "branch", "tag"}


@dataclass(frozen=True)
class Node:
    """A node: its id, type and properties."""

    id: str
    type: str
    props: dict

    def as_dict(self) -> dict:
        return {"id": self.id, "type": self.type, "props": self.props}


@dataclass(frozen=True)
class Neighbor:
    """An edge seen from one end: ``direction`` is ``out`` (node -> id) or ``in``."""

    edge: str
    direction: str
    id: str
    props: dict | None = None

    def as_dict(self) -> dict:
        out = {"edge": self.edge, "direction": self.direction, "id": self.id}
        if self.props:
            out["props"] = self.props
        return out


@dataclass(frozen=True)
class Page:
    """One page of nodes; pass ``next`` as ``after`` for the following page."""

    items: list[Node]
    next: str | None

    def as_dict(self) -> dict:
        return {"items": [n.as_dict() for n in self.items], "next": self.next}


@dataclass(frozen=True)
class PathResult:
    """A shortest path as steps (empty when source is target)."""

    steps: list[Step]

    def as_dict(self) -> dict:
        return {"length": len(self.steps), "steps": [
            {"from": format_key(s.node), "edge": s.edge, "direction": s.direction,
             "to": format_key(s.next)} for s in self.steps]}


def _edge_codes(edges: str | list[str] | None) -> set[int] | None:
    if edges is None:
        return None
    names = [edges] if isinstance(edges, str) else list(edges)
    return {edge_type(n).code for n in names if n}


@dataclass
class Snapshot:
    """One read transaction over a store: the primitives every query uses."""

    store: GraphStore
    txn: lmdb.Transaction
    _cursors: dict = field(default_factory=dict)

    def cursor(self, db: Any) -> lmdb.Cursor:
        c = self._cursors.get(db)
        if c is None:
            c = self._cursors[db] = self.txn.cursor(db)
        return c

    def props(self, key: bytes) -> dict | None:
        raw = self.txn.get(key, db=self.store.env.nodes[key[0]])
        return None if raw is None else decode_props(raw)

    def node(self, key: bytes) -> Node:
        props = self.props(key)
        if props is None:
            raise UnknownNode(f"no node {format_key(key)} in the graph")
        return Node(format_key(key), key_type(key).name, props)

    def adjacent(self, key: bytes, direction: str, codes: set[int] | None = None
                 ) -> Iterator[tuple[int, str, bytes]]:
        """``(edge code, direction, other key)`` for every edge at ``key``."""
        env = self.store.env
        if direction in ("out", "both"):
            for code in OUT_EDGES_OF.get(key[0], ()):
                if codes is None or code in codes:
                    c = self.cursor(env.out[code])
                    if c.set_key(key):
                        for other in c.iternext_dup():
                            yield code, "out", other
        if direction in ("in", "both"):
            for code in IN_EDGES_OF.get(key[0], ()):
                if codes is None or code in codes:
                    c = self.cursor(env.inn[code])
                    if c.set_key(key):
                        for other in c.iternext_dup():
                            yield code, "in", other

    def expander(self, direction: str, codes: set[int] | None):
        def expand(key: bytes):
            return ((_EDGE_NAME[code], d, other) for code, d, other in self.adjacent(key, direction, codes))

        return expand

    def lookup(self, key: bytes) -> bytes | None:
        return self.txn.get(key, db=self.store.env.lookup)

    def index_scan(self, key: bytes, after: bytes | None = None) -> Iterator[bytes]:
        """Node keys of the index entry ``key``, in key order, after ``after``."""
        c = self.cursor(self.store.env.idx)
        if after is None:
            if not c.set_key(key):
                return
        elif not c.set_range_dup(key, after):
            return
        for node in c.iternext_dup():
            if after is None or node > after:
                yield node

    def type_scan(self, code: int, after: bytes | None = None) -> Iterator[bytes]:
        """Keys of every node of a type, in key order, after ``after``."""
        c = self.cursor(self.store.env.nodes[code])
        found = c.set_range(after + b"\0") if after is not None else c.first()
        while found:
            yield c.key()
            found = c.next()


class GraphReader:
    """Queries over the active version (or a fixed ``version``) of a projection."""

    def __init__(self, projections_dir: str | Path, name: str = NAME, *,
                 version: int | None = None) -> None:
        self.versions = Versions(projections_dir, name)
        self.fixed = version
        self._store: GraphStore | None = None
        self._version: int | None = None
        self._pointer_stamp: int | None = None

    def close(self) -> None:
        """Release the open version."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> "GraphReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def version(self) -> int:
        """The version queries are answered from."""
        self._current()
        assert self._version is not None
        return self._version

    def _current(self) -> GraphStore:
        if self.fixed is not None:
            wanted = self.fixed
        else:
            try:
                stamp = os.stat(self.versions.root / "ACTIVE").st_mtime_ns
            except FileNotFoundError:
                raise NoActiveVersion(
                    f"projection {self.versions.name!r} has no active version yet under"
                    f" {self.versions.root.parent} - run `fleet replay {self.versions.name}`"
                ) from None
            if stamp == self._pointer_stamp and self._store is not None:
                return self._store
            self._pointer_stamp = stamp
            wanted = self.versions.active()
            if wanted is None:
                raise NoActiveVersion(f"projection {self.versions.name!r} has no active version")
        if self._store is None or self._version != wanted:
            self.versions.info(wanted)  # raises UnknownVersion with the versions on disk
            old = self._store
            self._store = GraphStore(self.versions.path(wanted))
            self._version = wanted
            if old is not None:
                old.close()
        return self._store

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """One consistent read transaction over the current version."""
        store = self._current()
        with store.env.read() as txn:
            yield Snapshot(store, txn)

    # -- ids ---------------------------------------------------------------

    def resolve(self, ref: str) -> bytes:
        """A node key from an id (``issue:gitlab:12``) or a path reference
        (``gitlab:group/project``, ``gitlab:group/project#12``, ``gitlab:group/project!3``)."""
        head, sep, rest = ref.partition(":")
        if not sep or not rest:
            raise QueryError(
                f"{ref!r} is neither a node id (issue:gitlab:12) nor a path (gitlab:group/project#12)"
            )
        if head.lower() in _TAGS:
            key = parse_key(ref)
            if key[0] == COMMIT_REF:
                with self.snapshot() as snap:
                    stored = snap.lookup(commit_lookup(key))
                if stored is None:
                    raise UnknownNode(f"no node {format_key(key)} in the graph")
                return stored
            return key
        return self._resolve_path(head, rest, ref)

    def _resolve_path(self, source: str, text: str, ref: str) -> bytes:
        kind, number = None, None
        for mark, lookup_kind in (("#", b"i"), ("!", b"m")):
            if mark in text:
                text, _, tail = text.partition(mark)
                if not tail.isdigit():
                    raise QueryError(f"{ref!r}: expected a number after {mark!r}")
                kind, number = lookup_kind, int(tail)
        s = source_prefix(source)
        segments = [seg for seg in text.split("/") if seg]
        if not segments:
            raise QueryError(f"{ref!r} names no path - e.g. gitlab:group/project#12")
        with self.snapshot() as snap:
            node = snap.lookup(root_lookup(s, segments[0]))
            for segment in segments[1:]:
                if node is None or node[0] != CODES["Group"][0]:
                    node = None
                    break
                node = snap.lookup(child_lookup(node, segment))
            if node is None:
                raise UnknownNode(f"no group or project at {source}:{text} in the graph")
            if kind is None:
                return node
            if node[0] != CODES["Project"][0]:
                raise UnknownNode(f"{source}:{text} is a group, not a project")
            found = snap.lookup(iid_lookup(kind, s, key_int(node), number))
            if found is None:
                what = "issue" if kind == b"i" else "merge request"
                raise UnknownNode(f"no {what} {number} in project {source}:{text}")
            return found

    # -- queries -----------------------------------------------------------

    def node(self, ref: str) -> Node:
        """A node with its properties; raises :class:`UnknownNode`."""
        key = self.resolve(ref)
        with self.snapshot() as snap:
            return snap.node(key)

    def neighbors(self, ref: str, *, edges: str | list[str] | None = None,
                  direction: str = "both", limit: int = 100, with_props: bool = False
                  ) -> list[Neighbor]:
        """Edges at a node, filtered by edge type and direction, at most ``limit``."""
        if direction not in _DIRECTIONS:
            raise QueryError(f"direction must be one of {', '.join(_DIRECTIONS)}, got {direction!r}")
        key = self.resolve(ref)
        codes = _edge_codes(edges)
        out: list[Neighbor] = []
        with self.snapshot() as snap:
            if snap.props(key) is None:
                raise UnknownNode(f"no node {format_key(key)} in the graph")
            eprops = snap.store.env.eprops
            for code, d, other in snap.adjacent(key, direction, codes):
                if len(out) >= limit:
                    break
                props = None
                if with_props:
                    src, dst = (key, other) if d == "out" else (other, key)
                    raw = snap.txn.get(src + bytes([code]) + dst, db=eprops)
                    props = decode_props(raw) if raw is not None else None
                out.append(Neighbor(_EDGE_NAME[code], d, format_key(other), props))
        return out

    def hops(self, ref: str, depth: int, *, edges: str | list[str] | None = None,
             direction: str = "both", max_nodes: int = 10_000) -> dict:
        """Nodes within ``depth`` hops: ``{"nodes": {id: distance}, "truncated": bool}``."""
        if direction not in _DIRECTIONS:
            raise QueryError(f"direction must be one of {', '.join(_DIRECTIONS)}, got {direction!r}")
        key = self.resolve(ref)
        with self.snapshot() as snap:
            if snap.props(key) is None:
                raise UnknownNode(f"no node {format_key(key)} in the graph")
            found = hops(key, depth, snap.expander(direction, _edge_codes(edges)), max_nodes=max_nodes)
        return {"start": format_key(key), "depth": depth, "truncated": found.truncated,
                "count": len(found.nodes),
                "nodes": {format_key(k): d for k, d in found.nodes.items()}}

    def path(self, src_ref: str, dst_ref: str, *, edges: str | list[str] | None = None,
             directed: bool = False, max_depth: int = 6) -> PathResult | None:
        """A shortest path between two nodes, or None within ``max_depth``."""
        src, dst = self.resolve(src_ref), self.resolve(dst_ref)
        codes = _edge_codes(edges)
        with self.snapshot() as snap:
            for key in (src, dst):
                if snap.props(key) is None:
                    raise UnknownNode(f"no node {format_key(key)} in the graph")
            forward = snap.expander("out" if directed else "both", codes)
            backward = snap.expander("in" if directed else "both", codes)
            steps = shortest_path(src, dst, forward, backward, max_depth=max_depth)
        return None if steps is None else PathResult(steps)

    def find(self, type_name: str, filters: dict[str, Any] | None = None, *,
             source: str | None = None, limit: int = 50, after: str | None = None) -> Page:
        """Nodes of a type whose properties equal ``filters``, a page at a time.

        Uses the longest index whose leading fields are all filtered on, else
        scans the type; properties are always re-checked.
        """
        t = node_type(type_name)
        filters = dict(filters or {})
        unknown = [f for f in filters if f not in t.props]
        if unknown:
            raise QueryError(f"{t.name} has no property {unknown[0]!r} - it has: {', '.join(t.props)}")
        after_key = self.resolve(after) if after else None
        index = _best_index(t.name, filters)
        items: list[Node] = []
        with self.snapshot() as snap:
            if index is None:
                candidates = snap.type_scan(t.code, after_key)
                if source is not None:
                    prefix = CODES[t.name] + source_prefix(source)
                    candidates = (k for k in candidates if k.startswith(prefix))
            else:
                sources = [source] if source else _sources(snap, t.code)
                candidates = (k for s in sources for k in snap.index_scan(
                    _index_key(index, s, filters), after_key))
            for key in candidates:
                props = snap.props(key)
                if props is None or any(props.get(f) != v for f, v in filters.items()):
                    continue
                items.append(Node(format_key(key), t.name, props))
                if len(items) > limit:
                    break
        more = len(items) > limit
        items = items[:limit]
        return Page(items, items[-1].id if more and items else None)

    def counts(self) -> dict:
        """Nodes and edges per type, and the version and checkpoint they describe."""
        with self.snapshot() as snap:
            counts = snap.store.counts(snap.txn)
            counts["position"] = snap.store.meta_int(snap.txn, CHECKPOINT)
        counts["version"] = self._version
        return counts


def _best_index(type_name: str, filters: dict):
    """The index with the most fields, all of them filtered on (an exact key)."""
    best = None
    for index in INDEXES:
        if index.node_type == type_name and all(f in filters for f in index.fields):
            if best is None or len(index.fields) > len(best.fields):
                best = index
    return best


def _index_key(index, source: str, filters: dict) -> bytes:
    from .indexing import index_prefix

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
