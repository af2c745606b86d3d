"""One read transaction over one version: the primitives every query uses.

A :class:`Snapshot` reads nodes, edges, indexes and lookups of the version an
:class:`OpenVersion` holds, with one cursor per table, and resolves ids and
paths (``gitlab:group/project#12``) to node keys. The edge tables of each
node type are planned once per direction and edge filter.
"""

from __future__ import annotations

from bisect import bisect_left
from itertools import chain
from typing import Any, Callable, Iterator

import lmdb

from projections.errors import QueryError, UnknownNode
from projections.model.indexing import child_lookup, iid_lookup, path_lookup, root_lookup
from projections.model.keys import (
    CODES,
    COMMIT_REF,
    TAGS,
    commit_lookup,
    format_key,
    key_int,
    parse_id,
    source_prefix,
)
from projections.model.ontology import EDGE_TYPES, NODE_TYPES
from projections.read.results import Node, Step
from projections.store.graph import IN_EDGES_OF, OUT_EDGES_OF, GraphStore
from projections.store.writeset import EDGE_BYTES, PROPS_EDGES, decode_props
from projections.versions.pointer import Pointer, PointerWatch

__all__ = ["OpenVersion", "Plan", "Snapshot", "edge_position"]

_EDGE_NAME = {e.code: e.name for e in EDGE_TYPES}
_TYPE_NAME = {t.code: t.name for t in NODE_TYPES}
_TAGS = set(TAGS.values()) | {t.lower() for t in TAGS} | {"mr", "branch", "tag"}
_MAX_PLANS = 64

#: node type code -> ((edge code, direction, table), ...) for one direction and edge filter
Plan = dict[int, tuple[tuple[int, str, Any], ...]]

#: a level read walks an edge table with fewer than this many times as many entries as
#: keys to look up in it (measured on a 33,000-node 3-hop level: 2 -> 67 ms, 1 -> 71,
#: 3 -> 70, always probing -> 79)
_WALK_BELOW = 2


def _plan(store: GraphStore, direction: str, codes: frozenset[int] | None) -> Plan:
    """The edge tables of every node type for one direction and edge filter."""
    env = store.env
    plan: Plan = {}
    for t in NODE_TYPES:
        tables: list[tuple[int, str, Any]] = []
        if direction in ("out", "both"):
            tables += [(c, "out", env.out[c]) for c in OUT_EDGES_OF.get(t.code, ())
                       if codes is None or c in codes]
        if direction in ("in", "both"):
            tables += [(c, "in", env.inn[c]) for c in IN_EDGES_OF.get(t.code, ())
                       if codes is None or c in codes]
        plan[t.code] = tuple(tables)
    return plan


class OpenVersion(PointerWatch):
    """The version a reader answers from: its store, whether ACTIVE still names
    it (:class:`~projections.versions.pointer.PointerWatch`), and the plans made for it."""

    __slots__ = ("store", "number", "plans")

    def __init__(self, store: GraphStore, pointer: Pointer) -> None:
        super().__init__(pointer)
        self.store = store
        self.number = pointer.version
        self.plans: dict[tuple[str, frozenset[int] | None], Plan] = {}

    def plan(self, direction: str, codes: frozenset[int] | None) -> Plan:
        """The (cached) plan for a direction and an edge filter."""
        found = self.plans.get((direction, codes))
        if found is None:
            if len(self.plans) >= _MAX_PLANS:
                self.plans.clear()
            found = self.plans[(direction, codes)] = _plan(self.store, direction, codes)
        return found


class Snapshot:
    """One read transaction over a version: the primitives every query uses.

    A context manager (:meth:`GraphReader.snapshot`): the transaction begins
    on entry and is released on exit, so keep it short.
    """

    __slots__ = ("store", "version", "txn", "_env", "_open", "_cursors")

    def __init__(self, opened: OpenVersion) -> None:
        self.store = opened.store
        self.version = opened.number
        self._open = opened
        self._cursors: dict[Any, lmdb.Cursor] = {}

    def __enter__(self) -> "Snapshot":
        self._env = self.store.env
        self.txn: lmdb.Transaction = self._env.begin_read()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._env.end_read(self.txn)

    def cursor(self, db: Any) -> lmdb.Cursor:
        """This transaction's cursor on table ``db`` (one per table, reused)."""
        c = self._cursors.get(db)
        if c is None:
            c = self._cursors[db] = self.txn.cursor(db)
        return c

    def plan(self, direction: str, codes: frozenset[int] | None = None) -> Plan:
        """Which tables hold the edges of each node type (see :func:`_plan`)."""
        return self._open.plan(direction, codes)

    # -- nodes ---------------------------------------------------------------

    def exists(self, key: bytes) -> bool:
        """Whether the graph has the node ``key`` (its properties are not decoded)."""
        return self.txn.get(key, db=self.store.env.nodes[key[0]]) is not None

    def props(self, key: bytes) -> dict | None:
        """The properties of node ``key``, None when there is no such node."""
        raw = self.txn.get(key, db=self.store.env.nodes[key[0]])
        return None if raw is None else decode_props(raw)

    def node(self, key: bytes) -> Node:
        """The node ``key``; raises :class:`UnknownNode`."""
        props = self.props(key)
        if props is None:
            raise UnknownNode(f"no node {format_key(key)} in the graph")
        return Node(format_key(key), _TYPE_NAME[key[0]], props)

    def require(self, key: bytes) -> bytes:
        """``key``, or :class:`UnknownNode` when the graph has no such node."""
        if not self.exists(key):
            raise UnknownNode(f"no node {format_key(key)} in the graph")
        return key

    # -- edges ---------------------------------------------------------------

    def adjacent(self, key: bytes, direction: str, codes: set[int] | frozenset[int] | None = None
                 ) -> Iterator[tuple[int, str, bytes]]:
        """``(edge code, direction, other key)`` for every edge at ``key``."""
        for code, d, db in self.plan(direction, _frozen(codes)).get(key[0], ()):
            c = self.cursor(db)
            if c.set_key(key):
                # Read the table's run now: the caller may walk other edges in between.
                for other in list(c.iternext_dup()):
                    yield code, d, other

    def edges_after(self, key: bytes, direction: str,
                    codes: set[int] | frozenset[int] | None = None, after: bytes | None = None
                    ) -> Iterator[tuple[int, str, bytes]]:
        """``(edge code, direction, other key)`` at ``key`` in page order (the plan's tables
        in turn, each one's others in key order), strictly after the position ``after``
        (:func:`edge_position`). Lazy, one table's cursor at a time: read other
        tables while iterating, not the one it reads."""
        tables = self.plan(direction, _frozen(codes)).get(key[0], ())
        start, last = 0, None
        if after is not None:
            if len(after) < 3 or after[1] > 1:
                raise QueryError("the cursor holds no edge position - pass the `next` of the "
                                 "previous page unchanged")
            code, d, last = after[0], "in" if after[1] else "out", after[2:]
            start = next((i for i, (c, dd, _) in enumerate(tables) if (c, dd) == (code, d)), -1)
            if start < 0:
                raise QueryError("the cursor names an edge this query does not read - pass the "
                                 "`next` of the previous page of the same query")
        for i in range(start, len(tables)):
            code, d, db = tables[i]
            c = self.cursor(db)
            if last is not None and i == start:
                if not c.set_range_dup(key, last) or (c.value() == last and not c.next_dup()):
                    continue
            elif not c.set_key(key):
                continue
            for other in c.iternext_dup():
                yield code, d, other

    def edge_count(self, key: bytes, direction: str,
                   codes: set[int] | frozenset[int] | None = None) -> int:
        """How many edges :meth:`edges_after` yields from the start (O(1) per table)."""
        n = 0
        for _, _, db in self.plan(direction, _frozen(codes)).get(key[0], ()):
            c = self.cursor(db)
            if c.set_key(key):
                n += c.count()
        return n

    def expander(self, direction: str, codes: frozenset[int] | None = None
                 ) -> Callable[[bytes], Iterator[bytes]]:
        """A function ``key -> its neighbours' keys`` (with repeats) for traversals.

        The iterator it returns is lazy (a hub's edges are read only as far
        as needed) and shares cursors with the next call's: read it first.
        """
        plan = self.plan(direction, codes)
        by_type: dict[int, list[lmdb.Cursor]] = {}

        def expand(key: bytes) -> Iterator[bytes]:
            cursors = by_type.get(key[0])
            if cursors is None:
                cursors = by_type[key[0]] = [self.cursor(db) for _, _, db in plan.get(key[0], ())]
            return chain.from_iterable(c.iternext_dup() for c in cursors if c.set_key(key))

        return expand

    def level_expander(self, direction: str, codes: frozenset[int] | None = None
                       ) -> Callable[[list[bytes], int], list[bytes] | None]:
        """A function ``(keys, budget) -> all their neighbours' keys`` (with repeats), or None
        past ``budget`` of them, for wide frontiers.

        The keys are sorted (a key starts with its type's code, so each type
        is a slice) and each edge table is read for its slice in key order,
        so its B-tree is walked forwards, by one cursor without a generator
        per node (``getmulti`` measured slower: it builds a tuple per edge).
        The budget is checked after each node's edges, so a hub's are read
        whole: bounding each read with ``islice`` cost a fifth of the time
        of a 33,000-node level.

        A table holding fewer than :data:`_WALK_BELOW` times as many edges
        as there are keys to look up in it is walked instead (the type's
        part of it, in key order, so the answer is the same): 18,000
        commits probed one by one in CLOSES, where a few thousand sit, miss
        nearly every time.
        """
        plan = self.plan(direction, codes)

        def expand_level(keys: list[bytes], budget: int) -> list[bytes] | None:
            keys = sorted(keys)
            out: list[bytes] = []
            start = 0
            while start < len(keys):
                code = keys[start][0]
                end = bisect_left(keys, bytes((code + 1,)), start) if code < 255 else len(keys)
                of_type = keys[start:end]
                wanted: set[bytes] | None = None
                for _, _, db in plan.get(code, ()):
                    c = self.cursor(db)
                    if self.txn.stat(db)["entries"] < _WALK_BELOW * len(of_type):
                        wanted = set(of_type) if wanted is None else wanted
                        _walk_type(c, code, wanted, out)
                        if len(out) > budget:
                            return None
                        continue
                    for key in of_type:
                        if c.set_key(key):
                            out += c.iternext_dup()
                            if len(out) > budget:
                                return None
                start = end
            return out

        return expand_level

    def degree(self, direction: str, codes: frozenset[int] | None = None) -> Callable[[bytes], int]:
        """A function ``key -> how many edges it has`` (LMDB counts a key's duplicates in O(1))."""
        plan = self.plan(direction, codes)

        def count(key: bytes) -> int:
            n = 0
            for _, _, db in plan[key[0]]:
                c = self.cursor(db)
                if c.set_key(key):
                    n += c.count()
            return n

        return count

    def edge_props(self, src: bytes, code: int, dst: bytes) -> dict | None:
        """The properties of edge ``src -[code]-> dst`` (None for types without any)."""
        if code not in PROPS_EDGES:
            return None
        raw = self.txn.get(src + EDGE_BYTES[code] + dst, db=self.store.env.eprops)
        return None if raw is None else decode_props(raw)

    def steps(self, nodes: list[bytes], direction: str, codes: frozenset[int] | None) -> list[Step]:
        """Label a path's nodes with the first edge (in plan order) joining each pair."""
        plan = self.plan(direction, codes)
        out = []
        for a, b in zip(nodes, nodes[1:]):
            code, d = next((code, d) for code, d, db in plan[a[0]] if self.cursor(db).set_key_dup(a, b))
            out.append(Step(format_key(a), _EDGE_NAME[code], d, format_key(b)))
        return out

    # -- lookups and scans -----------------------------------------------------

    def lookup(self, key: bytes) -> bytes | None:
        """The node key a lookup key (iid, path, commit sha) names, or None."""
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

    # -- ids -----------------------------------------------------------------

    def resolve(self, ref: str) -> bytes:
        """A node key from an id (``issue:gitlab:12``) or a path reference
        (``gitlab:group/project``, ``gitlab:group/project#12``, ``gitlab:group/project!3``)."""
        head, sep, rest = ref.partition(":")
        if not sep or not rest:
            raise QueryError(
                f"{ref!r} is neither a node id (issue:gitlab:12) nor a path (gitlab:group/project#12)"
            )
        if head in _TAGS or head.lower() in _TAGS:
            key = parse_id(ref)[0]
            if key[0] != COMMIT_REF:
                return key
            stored = self.lookup(commit_lookup(key))
            if stored is None:
                raise UnknownNode(f"no node {format_key(key)} in the graph")
            return stored
        return self._resolve_path(head, rest, ref)

    def _resolve_path(self, source: str, text: str, ref: str) -> bytes:
        kind, number = None, None
        for mark, lookup_kind in (("#", b"i"), ("!", b"m")):
            if mark in text:
                text, _, tail = text.partition(mark)
                if not tail.isdecimal() or len(tail) > 20 or int(tail) >= 1 << 64:
                    raise QueryError(f"{ref[:80]!r}: expected a number below 2**64 after {mark!r}")
                kind, number = lookup_kind, int(tail)
        s = source_prefix(source)
        segments = [seg for seg in text.split("/") if seg]
        if not segments:
            raise QueryError(f"{ref!r} names no path - e.g. gitlab:group/project#12")
        # a project known by its full path only (its group unknown, or GitHub's owner/repo)
        node = self.lookup(path_lookup(s, "/".join(segments)))
        if node is None:
            node = self.lookup(root_lookup(s, segments[0]))
            for i in range(1, len(segments)):
                child = None
                if node is not None and node[0] == CODES["Group"][0]:
                    child = self.lookup(child_lookup(node, segments[i]))
                if child is None and i < len(segments) - 1:  # a subgroup known by full path
                    child = self.lookup(path_lookup(s, "/".join(segments[: i + 1])))
                node = child
        if node is None:
            raise UnknownNode(f"no group or project at {source}:{text} in the graph")
        if kind is None:
            return node
        if node[0] != CODES["Project"][0]:
            raise UnknownNode(f"{source}:{text} is a group, not a project")
        found = self.lookup(iid_lookup(kind, s, key_int(node), number))
        if found is None:
            what = "issue" if kind == b"i" else "merge request"
            raise UnknownNode(f"no {what} {number} in project {source}:{text}")
        return found


def edge_position(code: int, direction: str, other: bytes) -> bytes:
    """The position of one edge in :meth:`Snapshot.edges_after`'s order, for a cursor."""
    return bytes((code, direction == "in")) + other


def _walk_type(c: lmdb.Cursor, code: int, wanted: set[bytes], out: list[bytes]) -> None:
    """Append the values of the keys in ``wanted`` (all of type ``code``), read by walking
    the type's part of the cursor's table in key order."""
    if not c.set_range(bytes((code,))):
        return
    for key, value in c.iternext():
        if key[0] != code:
            return
        if key in wanted:
            out.append(value)


def _frozen(codes: set[int] | frozenset[int] | None) -> frozenset[int] | None:
    return codes if codes is None or isinstance(codes, frozenset) else frozenset(codes)
