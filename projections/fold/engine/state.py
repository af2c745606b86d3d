"""One segment's graph state in memory, and the semantics of every graph operation.

:class:`Segment` holds what a run of events did to the graph since the last
flush: node values (a property dict, or msgpack bytes where a value is only
written), pending edges, lookups. What it needs from earlier segments it
reads from the committed store through one read transaction, once per key
(a node's properties, an edge list, a lookup), and never for keys past a
table's last key, which cannot be stored yet.

The operations mean exactly what :mod:`projections.model.mutations` says
(the overlay's semantics); handlers call them directly, with no mutation
tuples in between.
"""

from __future__ import annotations

from typing import Any

import lmdb

from projections.fold import stamps
from projections.fold.slots import ABSENT, MISSING, TOMB
from projections.model import mutations as m
from projections.model.indexing import (
    DERIVED_FIELDS,
    LOOKUP_CODES,
    child_lookup,
    iid_lookup,
    lookup_key,
    path_lookup,
    root_lookup,
)
from projections.model.keys import CODES, commit_key, key_int, pack_int
from projections.model.ontology import EDGE_TYPES
from projections.store.graph import IN_EDGES_OF, OUT_EDGES_OF, GraphStore
from projections.store.writeset import decode_props

__all__ = ["EDGE_SLOTS", "ENTRY_BYTES", "Segment"]

_E = {e.name: e.code for e in EDGE_TYPES}
_CLOSES, _MENTIONS, _IN_GROUP = _E["CLOSES"], _E["MENTIONS"], _E["IN_GROUP"]
_PROJECT = CODES["Project"]
_PROJECT_CODE = _PROJECT[0]
_GROUP_CODE = CODES["Group"][0]
_CASCADE = {e.code: frozenset(CODES[t][0] for t in e.cascade) for e in EDGE_TYPES if e.cascade}
_ORPHAN = {e.code: frozenset(CODES[t][0] for t in e.orphan_cascade) for e in EDGE_TYPES
           if e.orphan_cascade}
_EDGE_CODES = tuple(e.code for e in EDGE_TYPES)
EDGE_SLOTS = max(_EDGE_CODES) + 1
_DEFAULT_BRANCHES = ("main", "master")
_LOOKUP_FIELDS = {code: DERIVED_FIELDS[code] for code in LOOKUP_CODES}
_STAMPED, _STAMPED_EDGES = stamps.STAMPED, stamps.STAMPED_EDGES
_EMPTY: dict = {}

#: Estimated bytes of state per node, stored-node copy, edge entry and lookup
#: (dict slots, key bytes and values): scaled so that the estimate matched
#: tracemalloc's count of a 100k-event segment of the simulated workload.
ENTRY_BYTES = {"node": 315, "base": 195, "edge": 140, "lookup": 175}


class Segment:
    """The graph state of one segment over ``store``'s committed graph (read through ``txn``)."""

    def __init__(self, store: GraphStore, txn: lmdb.Transaction) -> None:
        env = store.env
        self.txn = txn
        self._node_dbs = env.nodes
        self._out_dbs = env.out
        self._in_dbs = env.inn
        self._lookup_db = env.lookup
        self.tombs = store.tombs  # committed tombstones (the segment's own are TOMB values)
        #: per node table, its last committed key: any key above it is not stored
        self.last: dict[int, bytes] = {}
        for code, db in env.nodes.items():
            c = txn.cursor(db)
            self.last[code] = c.key() if c.last() else b""
        self.position = 0
        #: node key -> MISSING, TOMB, a property dict, or msgpack bytes of the properties
        self.nodes: dict[bytes, Any] = {}
        #: node key -> its committed msgpack value (None: read, not stored)
        self.base: dict[bytes, bytes | None] = {}
        #: per edge code: source -> one target (a present edge without properties)
        #: or a dict target -> True, properties, or None (removed)
        self.out: list[dict[bytes, Any]] = [{} for _ in range(EDGE_SLOTS)]
        #: per edge code: target -> one source or a set of sources with a pending entry
        self.inn: list[dict[bytes, Any]] = [{} for _ in range(EDGE_SLOTS)]
        self.edge_entries = 0
        #: lookup key -> node key or None: read from the store / written by this segment
        self.lookups: dict[bytes, bytes | None] = {}
        self.lookup_writes: dict[bytes, bytes | None] = {}
        #: committed adjacency read by this segment: (direction, edge, key) -> other keys
        self._adjacent: dict[tuple[int, int, bytes], tuple[bytes, ...]] = {}
        self._cursors: dict[Any, lmdb.Cursor] = {}
        #: the stamp of the operations being applied, the stamp maps read or written
        #: (:mod:`projections.fold.stamps`), and those to encode into the lookup writes
        self.at = 0
        self.stamps: dict[bytes, dict] = {}
        self._stamps_dirty: set[bytes] = set()

    # -- size --------------------------------------------------------------

    def state_bytes(self) -> int:
        """A cheap estimate of the memory this segment's state holds."""
        return (len(self.nodes) * ENTRY_BYTES["node"] + len(self.base) * ENTRY_BYTES["base"]
                + self.edge_entries * ENTRY_BYTES["edge"]
                + (len(self.lookups) + len(self.lookup_writes) + len(self._adjacent)
                   + len(self.stamps)) * ENTRY_BYTES["lookup"])

    # -- committed state ---------------------------------------------------

    def load(self, key: bytes) -> Any:
        """The node's current value (MISSING, TOMB, dict or bytes), reading the store once."""
        v = self.nodes.get(key, ABSENT)
        if v is ABSENT:
            if key in self.tombs:
                v = TOMB
            elif key > self.last[key[0]]:
                v = MISSING
            else:
                raw = self.base[key] = self.txn.get(key, db=self._node_dbs[key[0]])
                v = MISSING if raw is None else raw
            self.nodes[key] = v
        return v

    def props(self, key: bytes, v: Any) -> dict:
        """The property dict of a live value (decoded and kept if it was bytes)."""
        if v.__class__ is bytes:
            v = self.nodes[key] = decode_props(v)
        return v

    def stored(self, key: bytes) -> bool:
        """Whether ``key`` may be in the committed graph (False: known not to be)."""
        b = self.base.get(key, ABSENT)
        if b is not ABSENT:
            return b is not None
        return key <= self.last[key[0]] and key not in self.tombs

    def lookup(self, lkey: bytes) -> bytes | None:
        """The node a lookup key names now."""
        v = self.lookup_writes.get(lkey, ABSENT)
        if v is ABSENT:
            v = self.lookups.get(lkey, ABSENT)
            if v is ABSENT:
                v = self.lookups[lkey] = self.txn.get(lkey, db=self._lookup_db)
        return v

    def _committed(self, direction: int, edge: int, key: bytes) -> tuple[bytes, ...]:
        """Committed neighbours of ``key`` along ``edge`` (0: out, 1: in), read once."""
        ck = (direction, edge, key)
        found = self._adjacent.get(ck)
        if found is None:
            db = (self._out_dbs if direction == 0 else self._in_dbs)[edge]
            c = self._cursors.get(db)
            if c is None:
                c = self._cursors[db] = self.txn.cursor(db)
            found = tuple(c.iternext_dup()) if c.set_key(key) else ()
            self._adjacent[ck] = found
        return found

    # -- stamps --------------------------------------------------------------

    def _stamps(self, key: bytes) -> dict:
        """The stamp map of a stamped node, to change."""
        st = self.stamps.get(key)
        if st is None:
            st = self.stamps[key] = stamps.decode(self.lookup(stamps.stamp_key(key)))
        self._stamps_dirty.add(key)
        return st

    def seal(self) -> None:
        """Encode the stamp maps changed since the last call into the lookup writes
        (before the segment's writes are built)."""
        for key in self._stamps_dirty:
            self.lookup_writes[stamps.stamp_key(key)] = stamps.encode(self.stamps[key])
        self._stamps_dirty.clear()

    def _tombstoned(self, key: bytes) -> bool:
        v = self.nodes.get(key, ABSENT)
        return v is TOMB or (v is ABSENT and key in self.tombs)

    def _newer(self, key: bytes, patch: dict) -> None:
        """What CREATE, MERGE and ENSURE do to a stamped node: each property of ``patch``
        not older than its last write is written (``None`` removes it)."""
        v = self.load(key)
        if v is TOMB:
            return
        won = stamps.winners(self._stamps(key), self.at, patch)
        old = None if v is MISSING else self.props(key, v)
        if old is not None and all(old.get(k, ABSENT) == value for k, value in won.items()):
            return  # newer stamps, the same properties (an actor's names, mostly)
        new = {**old, **won} if old else dict(won)
        if None in won.values():
            for k, value in won.items():
                if value is None:
                    del new[k]
        if old is None or new != old:
            self.nodes[key] = new
            if key[0] in LOOKUP_CODES:
                self._changed(key, old, new, won)

    # -- commits -----------------------------------------------------------

    def commit(self, ref: bytes, allocate: bool = True) -> bytes | None:
        """The stored key of a commit reference, allocated at this position on first sight."""
        lk = b"h" + ref[1:]
        key = self.lookup(lk)
        if key is None and allocate:
            key = commit_key(ref, self.position)
            self.lookup_writes[lk] = key
            self.lookups.pop(lk, None)
            self.nodes[key] = MISSING
            self.base[key] = None
        return key

    # -- nodes ---------------------------------------------------------------

    def _changed(self, key: bytes, old: dict | None, new: dict | None, touched: Any) -> None:
        """Keep the node's lookup entry in step (index entries are derived at flush)."""
        code = key[0]
        if code in LOOKUP_CODES and (touched is None or old is None
                                     or not _LOOKUP_FIELDS[code].isdisjoint(touched)):
            before, after = lookup_key(key, old), lookup_key(key, new)
            if before != after:
                if before is not None and self.lookup(before) == key:
                    self.lookup_writes[before] = None
                if after is not None:
                    self.lookup_writes[after] = key

    def ensure(self, key: bytes, props: dict) -> None:
        """``ENSURE``: create the node with ``props`` unless it exists or is deleted."""
        if props and key[0] in _STAMPED:
            self._newer(key, props)  # the names an event shows: newer ones win
            return
        v = self.nodes.get(key, ABSENT)
        if v is ABSENT:
            v = self.load(key)
        if v is MISSING:
            self.nodes[key] = props
            if key[0] in LOOKUP_CODES:
                self._changed(key, None, props, None)

    def set(self, key: bytes, props: dict) -> None:
        """``SET``: the node's properties become ``props`` (types without derived keys only)."""
        v = self.nodes.get(key, ABSENT)
        if v is TOMB or (v is ABSENT and key in self.tombs):
            return
        self.nodes[key] = props

    def create(self, key: bytes, props: dict, encoded: bytes | None = None) -> None:
        """``CREATE``: ``props`` beneath the properties the node already has.

        ``encoded`` (the msgpack of ``props``) is kept instead of the dict
        when the node is new: types whose nodes are only written.
        """
        if key[0] in _STAMPED:
            self._newer(key, props)
            return
        v = self.load(key)
        if v is TOMB:
            return
        if v is MISSING:
            self.nodes[key] = props if encoded is None else encoded
            if key[0] in LOOKUP_CODES:
                self._changed(key, None, props, None)
            return
        cur = self.props(key, v)
        new = {**props, **cur}
        if new != cur:
            self.nodes[key] = new
            if key[0] in LOOKUP_CODES:
                self._changed(key, cur, new, [k for k in props if k not in cur])

    def merge(self, key: bytes, patch: dict) -> None:
        """``MERGE``: merge ``patch`` into the properties (``None`` removes one)."""
        if key[0] in _STAMPED:
            self._newer(key, patch)
            return
        v = self.load(key)
        if v is TOMB:
            return
        old = None if v is MISSING else self.props(key, v)
        new = {**old, **patch} if old else dict(patch)
        if None in patch.values():
            for k, value in patch.items():
                if value is None:
                    del new[k]
        if old is None or new != old:
            self.nodes[key] = new
            if key[0] in LOOKUP_CODES:
                self._changed(key, old, new, patch)

    def delete(self, key: bytes) -> None:
        """``DELETE``: the node, its edges and its cascading dependants go; tombstoned."""
        stack = [key]
        while stack:
            k = stack.pop()
            cur = self.load(k)
            if cur is TOMB:
                continue
            for edge, dst in self._all_edges(k, 0):
                self._drop(k, edge, dst)
            for edge, src in self._all_edges(k, 1):
                self._drop(src, edge, k)
                if src[0] in _CASCADE.get(edge, ()) or (
                        src[0] in _ORPHAN.get(edge, ()) and not self.out_edges(src, edge)):
                    stack.append(src)
            if k[0] in LOOKUP_CODES and cur is not MISSING:
                self._changed(k, self.props(k, cur), None, None)
            self.nodes[k] = TOMB

    # -- edges ---------------------------------------------------------------

    def pending(self, src: bytes, edge: int, dst: bytes) -> Any:
        """The edge's pending value (True, properties, None: removed) or ABSENT."""
        x = self.out[edge].get(src)
        if x is None:
            return ABSENT
        if x.__class__ is bytes:
            return True if x == dst else ABSENT
        return x.get(dst, ABSENT)

    def out_edges(self, src: bytes, edge: int) -> list[bytes]:
        """Current targets of ``src`` along ``edge``, sorted."""
        x = self.out[edge].get(src)
        stored = self._committed(0, edge, src) if self.stored(src) else ()
        if x is None:
            return list(stored)
        if x.__class__ is bytes:
            if not stored:
                return [x]
            return sorted({*stored, x})
        found = dict.fromkeys(stored, True)
        found.update(x)
        return sorted(d for d, v in found.items() if v is not None)

    def _all_edges(self, key: bytes, direction: int) -> list[tuple[int, bytes]]:
        """Current ``(edge, other)`` pairs of ``key`` in one direction, sorted."""
        found: dict[tuple[int, bytes], bool] = {}
        if self.stored(key):
            for edge in (OUT_EDGES_OF if direction == 0 else IN_EDGES_OF).get(key[0], ()):
                for other in self._committed(direction, edge, key):
                    found[(edge, other)] = True
        if direction == 0:
            for edge in _EDGE_CODES:
                x = self.out[edge].get(key)
                if x is None:
                    continue
                if x.__class__ is bytes:
                    found[(edge, x)] = True
                else:
                    for other, v in x.items():
                        found[(edge, other)] = v is not None
        else:
            for edge in _EDGE_CODES:
                y = self.inn[edge].get(key)
                if y is None:
                    continue
                for other in ((y,) if y.__class__ is bytes else y):
                    found[(edge, other)] = self.pending(other, edge, key) is not None
        return sorted(pair for pair, present in found.items() if present)

    def _put(self, src: bytes, edge: int, dst: bytes, value: Any) -> None:
        """Record the edge's pending value (True, properties or None)."""
        out = self.out[edge]
        x = out.get(src)
        if x is None:
            out[src] = dst if value is True else {dst: value}
        elif x.__class__ is bytes:
            if x == dst:
                if value is not True:
                    out[src] = {dst: value}
                return
            out[src] = {x: True, dst: value}
        else:
            if dst in x:
                x[dst] = value
                return
            x[dst] = value
        self.edge_entries += 1
        inn = self.inn[edge]
        y = inn.get(dst)
        if y is None:
            inn[dst] = src
        elif y.__class__ is bytes:
            inn[dst] = {y, src}
        else:
            y.add(src)

    def _drop(self, src: bytes, edge: int, dst: bytes) -> None:
        self._put(src, edge, dst, None)

    def link(self, src: bytes, edge: int, dst: bytes, props: dict | None = None) -> None:
        """``LINK``: add the edge (or replace its properties); stubs for missing ends."""
        nodes = self.nodes
        vs, vd = nodes.get(src, ABSENT), nodes.get(dst, ABSENT)
        cs, cd = vs.__class__, vd.__class__
        src_live = cs is dict or cs is bytes
        dst_live = cd is dict or cd is bytes
        if not (src_live and dst_live):
            # A link to a deleted node is dropped; its other end is still met (a stub).
            tombs = self.tombs
            src_gone = not src_live and (vs is TOMB or (vs is ABSENT and src in tombs))
            dst_gone = not dst_live and (vd is TOMB or (vd is ABSENT and dst in tombs))
            if not src_live and not src_gone:
                self.ensure(src, {})
            if not dst_live and not dst_gone:
                self.ensure(dst, {})
            if src_gone or dst_gone:
                return
        if src[0] in _STAMPED and edge in _STAMPED_EDGES and not stamps.may_link(self._stamps(src), self.at, edge, dst):
            return
        if props is None:
            # The commonest case inline: a new edge from a node with no pending one.
            out = self.out[edge]
            if src not in out:
                out[src] = dst
                self.edge_entries += 1
                inn = self.inn[edge]
                y = inn.get(dst)
                if y is None:
                    inn[dst] = src
                elif y.__class__ is bytes:
                    inn[dst] = {y, src}
                else:
                    y.add(src)
                return
        self._put(src, edge, dst, props or True)

    def attach(self, src: bytes, edge: int, dst: bytes) -> None:
        """``ATTACH``: a creation's single-valued link, unless a move already set one
        (stamped: unless a newer one did; the link replaces older ones)."""
        if src[0] in _STAMPED and edge in _STAMPED_EDGES:
            self.clear(src, edge)
            self.link(src, edge, dst)
        elif not self.out_edges(src, edge):
            self.link(src, edge, dst)

    def unlink(self, src: bytes, edge: int, dst: bytes) -> None:
        """``UNLINK``: remove the edge if present (stamped: and older adds stay out)."""
        if src[0] in _STAMPED and edge in _STAMPED_EDGES and (
                self._tombstoned(src) or not stamps.may_unlink(self._stamps(src), self.at, edge, dst)):
            return
        cur = self.pending(src, edge, dst)
        if cur is None:
            return
        if cur is ABSENT and not (self.stored(src) and self.stored(dst)):
            return
        self._drop(src, edge, dst)

    def clear(self, src: bytes, edge: int) -> None:
        """``CLEAR``: remove every out-edge of type ``edge`` from ``src`` (stamped: those
        added no later, and older adds stay out)."""
        present = self.out_edges(src, edge)
        if src[0] in _STAMPED and edge in _STAMPED_EDGES:
            if self._tombstoned(src):
                return
            present = stamps.clear(self._stamps(src), self.at, edge, present)
        for dst in present:
            self._drop(src, edge, dst)

    # -- references ----------------------------------------------------------

    def ref(self, src: bytes, mode: int, source: bytes, project_id: int, number: int,
            path: str | None, branch: str | None) -> None:
        """``REF``: link ``src`` to the issue a text reference names, if it resolves."""
        if path is not None:
            project = self._resolve_path(source, path)
            if project is None:
                return
            target_project = key_int(project)
        else:
            target_project = project_id
        issue = self.lookup(iid_lookup(b"i", source, target_project, number))
        if issue is None or issue == src:
            return
        edge = _MENTIONS
        if mode == m.CLOSE:
            edge = _CLOSES
        elif mode == m.CLOSE_ON_DEFAULT:
            key = _PROJECT + source + pack_int(project_id)
            pushed_to = self.load(key)
            c = pushed_to.__class__
            default = (self.props(key, pushed_to).get("default_branch")
                       if c is dict or c is bytes else None)
            if (branch == default) if default else (branch in _DEFAULT_BRANCHES):
                edge = _CLOSES
        self.link(src, edge, issue)

    def link_iid(self, src: bytes, edge: int, kind: bytes, source: bytes, project_id: int,
                 iid: int) -> None:
        """``LINK_IID``: link ``src`` to the issue or merge request ``iid`` of a project, if known."""
        target = self.lookup(iid_lookup(kind, source, project_id, iid))
        if target is not None and target != src:
            self.link(src, edge, target)

    def join_group(self, project: bytes, source: bytes, namespace: str) -> None:
        """``JOIN_GROUP``: the project is in the group at full path ``namespace``, if known."""
        group = self._resolve_path(source, namespace, _GROUP_CODE)
        if group is None:
            return
        v = self.nodes.get(project, ABSENT)
        if v is TOMB or (v is ABSENT and project in self.tombs):
            return
        self.merge(project, {"group_id": key_int(group)})
        self.clear(project, _IN_GROUP)
        self.link(project, _IN_GROUP, group)

    def _resolve_path(self, source: bytes, path: str, code: int = _PROJECT_CODE) -> bytes | None:
        node = self.lookup(path_lookup(source, path))
        if node is not None and node[0] == code:
            return node
        segments = path.split("/")
        node = self.lookup(root_lookup(source, segments[0]))
        for i in range(1, len(segments)):
            child = None
            if node is not None and node[0] == _GROUP_CODE:
                child = self.lookup(child_lookup(node, segments[i]))
            if child is None and i < len(segments) - 1:  # a subgroup known by its full path
                child = self.lookup(path_lookup(source, "/".join(segments[: i + 1])))
            node = child
        return node if node is not None and node[0] == code else None
