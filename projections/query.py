"""Read-only queries over the active version of the graph projection.

``GraphReader(projections_dir)`` follows the ACTIVE pointer and answers each
query from one LMDB read transaction: a consistent snapshot, never blocked by
the writer. Node ids are the text form of :mod:`projections.keys`
(``issue:gitlab:12``); :meth:`Snapshot.resolve` also accepts paths
(``gitlab:group/project``, ``gitlab:group/project#12``,
``gitlab:group/project!3``).

Queries are meant to cost little more than the LMDB reads they need. The
reader keeps ``ACTIVE.stamp`` mapped: ``Versions`` rewrites its bytes after
every promotion, rollback or set-aside, so the next query sees the switch
by comparing 8 bytes of memory, with no system call. Once a second (and at
every query where there is no stamp yet) it also checks the ACTIVE file it
holds open with one ``fstat``: replaced, it is unlinked; rewritten in place
(by hand), it has a new mtime. The tables each node type's edges live in
are planned once per direction and edge filter, a query resolves its ids
in its own transaction, and results are msgspec Structs.

The realistic questions (open issues with a label, what closed an issue,
who authored what, what an issue blocks) live in :mod:`.questions`.
"""

from __future__ import annotations

import logging
import mmap
import os
import threading
from bisect import bisect_left
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from time import monotonic_ns
from typing import Any, Callable, Iterator

import lmdb
import msgspec

from .errors import NoActiveVersion, QueryError, UnknownNode
from .indexing import child_lookup, iid_lookup, index_prefix, root_lookup
from .keys import (CODES, COMMIT_REF, TAGS, commit_lookup, format_key, format_keys, key_int,
                   known_id, parse_id)
from .keys import source_prefix
from .ontology import EDGE_TYPES, INDEXES, NAME, NODE_TYPES, edge_type, node_type
from .store import CHECKPOINT, IN_EDGES_OF, OUT_EDGES_OF, GraphStore
from .traverse import hops, shortest_path
from .versions import STAMP, STAMP_BYTES, Versions, parse_version
from .writeset import EDGE_BYTES, decode_props

log = logging.getLogger(__name__)

__all__ = ["GraphReader", "Node", "Neighbor", "Page", "PathResult", "Snapshot", "Step",
           "PATH_MAX_NODES"]

#: default bound on the nodes a shortest-path search visits before it gives up
PATH_MAX_NODES = 1_000_000

_EDGE_NAME = {e.code: e.name for e in EDGE_TYPES}
_PROPS_EDGES = frozenset(e.code for e in EDGE_TYPES if e.props)
_TYPE_NAME = {t.code: t.name for t in NODE_TYPES}
_DIRECTIONS = ("out", "in", "both")
_TAGS = set(TAGS.values()) | {t.lower() for t in TAGS} | {"mr", "branch", "tag"}
_MAX_PLANS = 64

#: node type code -> ((edge code, direction, table), ...) for one direction and edge filter
Plan = dict[int, tuple[tuple[int, str, Any], ...]]


class Node(msgspec.Struct, frozen=True):
    """A node: its id, type and properties."""

    id: str
    type: str
    props: dict

    def as_dict(self) -> dict:
        return {"id": self.id, "type": self.type, "props": self.props}


class Neighbor(msgspec.Struct, frozen=True):
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


class Page(msgspec.Struct, frozen=True):
    """One page of nodes; pass ``next`` as ``after`` for the following page."""

    items: list[Node]
    next: str | None

    def as_dict(self) -> dict:
        return {"items": [n.as_dict() for n in self.items], "next": self.next}


class Step(msgspec.Struct, frozen=True):
    """One edge of a path from ``source`` to ``target``: walked ``out`` along
    the edge (source -[edge]-> target) or ``in`` against it."""

    source: str
    edge: str
    direction: str
    target: str

    def as_dict(self) -> dict:
        return {"from": self.source, "edge": self.edge, "direction": self.direction,
                "to": self.target}


class PathResult(msgspec.Struct, frozen=True):
    """The answer to a shortest-path query.

    ``steps`` is a shortest path (empty when source is target), or None when
    none was found. Then ``truncated`` tells the two reasons apart: True, the
    search gave up after visiting ``max_nodes`` nodes and a path may still
    exist; False, there is no path of at most ``max_depth`` edges.
    ``visited`` is how many nodes the search reached.
    """

    steps: list[Step] | None
    truncated: bool = False
    visited: int = 0

    @property
    def found(self) -> bool:
        """Whether a path was found."""
        return self.steps is not None

    @property
    def length(self) -> int | None:
        """The number of edges of the path found, or None."""
        return None if self.steps is None else len(self.steps)

    def as_dict(self) -> dict:
        return {"length": self.length,
                "steps": None if self.steps is None else [s.as_dict() for s in self.steps],
                "truncated": self.truncated, "visited": self.visited}


def _edge_codes(edges: str | list[str] | None) -> frozenset[int] | None:
    if edges is None:
        return None
    names = [edges] if isinstance(edges, str) else list(edges)
    return frozenset(edge_type(n).code for n in names if n)


def _check_direction(direction: str) -> None:
    if direction not in _DIRECTIONS:
        raise QueryError(f"direction must be one of {', '.join(_DIRECTIONS)}, got {direction!r}")


#: a level read walks an edge table with fewer than this many times as many entries as
#: keys to look up in it (measured on a 33,000-node 3-hop level: 2 -> 67 ms, 1 -> 71,
#: 3 -> 70, always probing -> 79)
_WALK_BELOW = 2

#: answers larger than this are formatted without format_key's cache (they would evict it)
_UNCACHED_FORMAT = 8192


def _format_many(keys: Any) -> list[str]:
    """Text ids of a traversal's nodes: cached one by one when few, in bulk when many."""
    if len(keys) > _UNCACHED_FORMAT:
        return format_keys(keys)
    return [format_key(k) for k in keys]


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


#: how long a reader trusts ``ACTIVE.stamp`` alone before it also checks ACTIVE's file:
#: the bound on following a pointer changed without the stamp (by hand, or by a
#: process that died between the switch and the stamp)
POINTER_RECHECK_NS = 1_000_000_000


class _Open:
    """The version a reader answers from: its store, the ACTIVE file held open
    with the mtime it had (``fd`` None: a fixed version; ``mtime`` None: the
    file was released by a switch), the stamp file mapped with the bytes it
    held before ACTIVE was read (``marks`` None: there was none), and the
    plans made for it."""

    __slots__ = ("store", "number", "fd", "mtime", "marks", "seen", "recheck_at", "plans")

    def __init__(self, store: GraphStore, number: int, fd: int | None, mtime: int,
                 marks: mmap.mmap | None = None, seen: bytes | None = None) -> None:
        self.store = store
        self.number = number
        self.fd = fd
        self.mtime: int | None = mtime
        self.marks = marks
        self.seen = seen
        self.recheck_at = monotonic_ns() + POINTER_RECHECK_NS
        self.plans: dict[tuple[str, frozenset[int] | None], Plan] = {}

    def unchanged(self) -> bool:
        """Whether ACTIVE still names this version (always, for a fixed one).

        Every switch of ACTIVE by :class:`Versions` rewrites the stamp file,
        so while its mapped bytes are the ones seen, nothing switched: a
        memory read instead of an ``fstat`` (~5 µs of a ~30 µs node lookup,
        with the CPU caches cold). Once a second ACTIVE's file is checked too.
        """
        if self.fd is None:
            return True
        if self.marks is not None:
            try:
                if self.marks[:STAMP_BYTES] == self.seen and monotonic_ns() < self.recheck_at:
                    return True
            except ValueError:  # unmapped by a concurrent switch: take the slow path
                return False
        return self._recheck()

    def _recheck(self) -> bool:
        """``unchanged`` by the ACTIVE file itself: not replaced, not rewritten."""
        if self.mtime is None:
            return False
        try:
            # The stamp is read before the file: a switch after this read shows in the file
            # now, or in the stamp at the next query.
            now = None if self.marks is None else self.marks[:STAMP_BYTES]
            st = os.fstat(self.fd)
        except (OSError, ValueError):  # closed by a concurrent switch: take the slow path
            return False
        if st.st_nlink > 0 and st.st_mtime_ns == self.mtime:
            self.seen = now
            self.recheck_at = monotonic_ns() + POINTER_RECHECK_NS
            return True
        return False

    def plan(self, direction: str, codes: frozenset[int] | None) -> Plan:
        """The (cached) plan for a direction and an edge filter."""
        found = self.plans.get((direction, codes))
        if found is None:
            if len(self.plans) >= _MAX_PLANS:
                self.plans.clear()
            found = self.plans[(direction, codes)] = _plan(self.store, direction, codes)
        return found

    def release_pointer(self) -> None:
        """Close the ACTIVE file and the stamp: from now on ``unchanged`` says False."""
        if self.fd is not None and self.mtime is not None:
            self.mtime = None
            os.close(self.fd)
            if self.marks is not None:
                self.marks.close()


class Snapshot:
    """One read transaction over a version: the primitives every query uses.

    A context manager (:meth:`GraphReader.snapshot`): the transaction begins
    on entry and is released on exit, so keep it short.
    """

    __slots__ = ("store", "version", "txn", "_env", "_open", "_cursors")

    def __init__(self, opened: _Open) -> None:
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
        if code not in _PROPS_EDGES:
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
                if not tail.isdigit():
                    raise QueryError(f"{ref!r}: expected a number after {mark!r}")
                kind, number = lookup_kind, int(tail)
        s = source_prefix(source)
        segments = [seg for seg in text.split("/") if seg]
        if not segments:
            raise QueryError(f"{ref!r} names no path - e.g. gitlab:group/project#12")
        node = self.lookup(root_lookup(s, segments[0]))
        for segment in segments[1:]:
            if node is None or node[0] != CODES["Group"][0]:
                node = None
                break
            node = self.lookup(child_lookup(node, segment))
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


@dataclass
class _Pointer:
    """What :meth:`GraphReader._read_pointer` found (``fd`` None: a fixed version)."""

    fd: int | None
    mtime: int
    version: int
    marks: mmap.mmap | None
    seen: bytes | None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        if self.marks is not None:
            self.marks.close()


def _map_stamp(path: str) -> mmap.mmap | None:
    """``ACTIVE.stamp`` mapped read-only, or None (no switch by this code yet: readers
    then check ACTIVE's file at every query, as before the stamp existed)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # missing, unreadable, a folder: queries work without it
        return None
    try:
        if os.fstat(fd).st_size < STAMP_BYTES:
            return None
        return mmap.mmap(fd, STAMP_BYTES, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)


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


class GraphReader:
    """Queries over the active version (or a fixed ``version``) of a projection.

    Safe to share between threads: each query runs in its own snapshot.
    """

    def __init__(self, projections_dir: str | Path, name: str = NAME, *,
                 version: int | None = None) -> None:
        self.versions = Versions(projections_dir, name)
        self.fixed = version
        self._pointer = str(self.versions.root / "ACTIVE")
        self._stamp = str(self.versions.root / STAMP)
        self._open: _Open | None = None
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

    def _current(self) -> _Open:
        opened = self._open
        if opened is not None and opened.unchanged():
            return opened
        with self._switching:
            opened = self._open
            if opened is not None and opened.unchanged():
                return opened
            return self._switch(opened)

    def _switch(self, old: _Open | None) -> _Open:
        """Open the version ACTIVE (or ``fixed``) names; reuse ``old``'s store if the same."""
        if self.fixed is None:
            pointer = self._read_pointer()
        else:
            pointer = _Pointer(None, 0, self.fixed, None, None)
        try:
            if old is not None and old.number == pointer.version:
                store = old.store
            else:
                self.versions.info(pointer.version)  # raises UnknownVersion with the versions on disk
                store = GraphStore(self.versions.path(pointer.version))
        except BaseException:
            pointer.close()
            raise
        self._open = _Open(store, pointer.version, pointer.fd, pointer.mtime, pointer.marks,
                           pointer.seen)
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

    def _read_pointer(self) -> "_Pointer":
        """The ACTIVE file opened and read once, with the stamp mapped before it was read."""
        marks = _map_stamp(self._stamp)
        seen = None if marks is None else marks[:STAMP_BYTES]
        try:
            fd = os.open(self._pointer, os.O_RDONLY)
        except FileNotFoundError:
            if marks is not None:
                marks.close()
            raise NoActiveVersion(
                f"projection {self.versions.name!r} has no active version yet under"
                f" {self.versions.root.parent} - run `fleet replay {self.versions.name}`"
            ) from None
        pointer = _Pointer(fd, 0, 0, marks, seen)
        try:
            pointer.mtime = os.fstat(fd).st_mtime_ns
            text = os.pread(fd, 64, 0).decode().strip()
            if not text:
                raise NoActiveVersion(f"projection {self.versions.name!r} has no active version")
            pointer.version = parse_version(text)
            return pointer
        except BaseException:
            pointer.close()
            raise

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
                if with_props and code in _PROPS_EDGES:
                    out += [Neighbor(name, d, format_key(o), snap.edge_props(
                        *((key, code, o) if d == "out" else (o, code, key)))) for o in others]
                else:
                    out += [Neighbor(name, d, format_key(o)) for o in others]
        return out

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
        index = _best_index(t.name, filters)
        items: list[Node] = []
        with self.snapshot() as snap:
            after_key = snap.resolve(after) if after else None
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
