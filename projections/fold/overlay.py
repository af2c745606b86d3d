"""The pending state of one write batch, and the semantics of every mutation.

An :class:`Overlay` sits on a :class:`StateReader` (the committed graph: an
LMDB read through the batch's write transaction, or a dict in tests) and
applies mutations in memory; :meth:`Overlay.finish` then hands the store a
:class:`~projections.store.writeset.WriteSet` of sorted puts and deletes. Applying
a whole batch in memory first lets the store write each sub-database in key
order with one C-level ``putmulti`` call, and a node touched a hundred times
in a batch is written once.

Two modes, one result:

* ``precise=True`` (live apply of an active version) reads every touched
  node and edge first, so it knows each change exactly and records it for
  the outbox;
* ``precise=False`` (rebuild, and building versions) skips reads whose
  answer cannot change the result: a commit or comment node (no derived
  keys) is written blind, a stub is put only if absent, an edge is put even
  if it may exist. The graph is the same either way; only change records
  need precision.
"""

from __future__ import annotations

from typing import Any, Iterable, Protocol

from events.errors import InvalidEvent
from projections.fold import stamps
from projections.fold.slots import ABSENT, MISSING, TOMB, Stub
from projections.fold.writes import build_writeset
from projections.model import mutations as m
from projections.model.indexing import (
    BLIND_CODES,
    DERIVED_FIELDS,
    INDEXED_CODES,
    LOOKUP_CODES,
    child_lookup,
    iid_lookup,
    index_keys,
    lookup_key,
    path_lookup,
    root_lookup,
)
from projections.model.keys import CODES, COMMIT_REF, commit_key, commit_lookup, key_int, pack_int
from projections.model.ontology import EDGE_TYPES, NODE_TYPES
from projections.store.writeset import WriteSet

__all__ = ["Overlay", "StateReader", "Change"]

#: ``(position, kind, key_or_src, edge_code, dst, props, changed)``; kinds in
#: :mod:`projections.model.records`
Change = tuple


class StateReader(Protocol):
    """Read access to the committed graph (what the batch starts from)."""

    def node(self, key: bytes) -> dict | None: ...
    def is_tomb(self, key: bytes) -> bool: ...
    def out_edges(self, key: bytes, edge: int | None = None) -> Iterable[tuple[int, bytes]]: ...
    def in_edges(self, key: bytes) -> Iterable[tuple[int, bytes]]: ...
    def has_edge(self, src: bytes, edge: int, dst: bytes) -> bool: ...
    def edge_props(self, src: bytes, edge: int, dst: bytes) -> dict | None: ...
    def lookup(self, key: bytes) -> bytes | None: ...


_PROJECT = CODES["Project"]
_PROJECT_CODE = _PROJECT[0]
_GROUP_CODE = CODES["Group"][0]
_E = {e.name: e.code for e in EDGE_TYPES}
_CLOSES, _MENTIONS, _IN_GROUP = _E["CLOSES"], _E["MENTIONS"], _E["IN_GROUP"]
_TYPE_NAMES = {t.code: t.name for t in NODE_TYPES}
_CASCADE = {e.code: frozenset(CODES[t][0] for t in e.cascade) for e in EDGE_TYPES if e.cascade}
_ORPHAN = {e.code: frozenset(CODES[t][0] for t in e.orphan_cascade) for e in EDGE_TYPES
           if e.orphan_cascade}
_DEFAULT_BRANCHES = ("main", "master")

NODE_UPSERTED, NODE_DELETED, EDGE_ADDED, EDGE_UPDATED, EDGE_REMOVED = range(5)
_LINK, _UNLINK, _ENSURE, _ATTACH, _STAMP = m.LINK, m.UNLINK, m.ENSURE, m.ATTACH, m.STAMP
_STAMPED, _STAMPED_EDGES = stamps.STAMPED, stamps.STAMPED_EDGES
_PROPS_EDGES = frozenset(e.code for e in EDGE_TYPES if e.props)
_EDGE_CODES = tuple(e.code for e in EDGE_TYPES)
_EDGE_SLOTS = max(_EDGE_CODES) + 1


class Overlay:
    """Mutations of one batch over ``reader``; see the module docstring."""

    def __init__(self, reader: StateReader, *, precise: bool) -> None:
        self.reader = reader
        self.precise = precise
        self.position = 0
        self.nodes: dict[bytes, Any] = {}
        self.base: dict[bytes, dict | None] = {}
        self.dirty: dict[bytes, None] = {}
        #: pending edges by edge code, then node, then the node at the other end:
        #: ``True``, the edge's properties, or None (removed)
        self.out: list[dict[bytes, dict[bytes, Any]]] = [{} for _ in range(_EDGE_SLOTS)]
        self.inn: list[dict[bytes, dict[bytes, Any]]] = [{} for _ in range(_EDGE_SLOTS)]
        self.lookups: dict[bytes, bytes | None] = {}
        self.lookups_dirty: dict[bytes, None] = {}
        self.commits: dict[bytes, bytes] = {}
        self.idx: dict[tuple[bytes, bytes], bool] = {}
        self.changes: list[Change] = []
        self._is_tomb = reader.is_tomb
        #: the stamp of the mutations being applied, and the stamp maps read or written
        self.at = 0
        self.stamps: dict[bytes, dict] = {}

    # -- driving -----------------------------------------------------------

    def apply(self, mutations: Iterable[m.Mutation], position: int = 0) -> None:
        """Apply one event's mutations (``position`` tags its change records)."""
        self.position = position
        nodes, commits, link = self.nodes, self.commits, self.link
        for mutation in mutations:
            code = mutation[0]
            if code == _LINK:  # the most frequent: no dispatch, commit references inline
                src, dst = mutation[1], mutation[3]
                if src[0] == COMMIT_REF:
                    src = commits.get(src) or self._commit(src, True)
                if dst[0] == COMMIT_REF:
                    dst = commits.get(dst) or self._commit(dst, True)
                link(src, mutation[2], dst, mutation[4])
                continue
            if code == _STAMP:
                self.at = mutation[1]
                continue
            if mutation[1][0] == COMMIT_REF or (
                    (code == _UNLINK or code == _ATTACH) and mutation[3][0] == COMMIT_REF):
                mutation = self._resolve_commits(mutation)
                if mutation is None:
                    continue
            if code == _ENSURE:
                # Every event ensures its actor: skip the call when the node is known to be there
                # (unless the names may be newer than the ones it has).
                v = nodes.get(mutation[1])
                if v is None or v is MISSING or (mutation[2] and mutation[1][0] in _STAMPED):
                    self.ensure(mutation[1], mutation[2])
                continue

            op = _OPS.get(code)
            if op is None:
                raise InvalidEvent("schema", f"unknown mutation {code!r}")
            op(self, *mutation[1:])

    def _resolve_commits(self, mutation: m.Mutation) -> m.Mutation | None:
        """Replace commit references by stored keys (None: nothing to act on)."""
        code = mutation[0]
        # Removing edges of a commit never seen needs no key; anything else makes one.
        allocate = code != m.UNLINK and code != m.CLEAR
        resolved = list(mutation)
        for i in ((1, 3) if code == m.LINK or code == m.UNLINK or code == m.ATTACH else (1,)):
            if resolved[i][0] == COMMIT_REF:
                key = self._commit(resolved[i], allocate)
                if key is None:
                    return None
                resolved[i] = key
        return resolved

    def _commit(self, ref: bytes, allocate: bool) -> bytes | None:
        key = self.commits.get(ref)
        if key is None:
            lookup = commit_lookup(ref)
            key = self._lookup(lookup)
            if key is None:
                if not allocate:
                    return None
                key = commit_key(ref, self.position)
                self.lookups[lookup] = key
                self.lookups_dirty[lookup] = None
                # A key made here never existed: no need to read it, or its edges, later.
                self.nodes[key] = MISSING
                self.base[key] = None
            self.commits[ref] = key
        return key

    def finish(self) -> WriteSet:
        """The batch's sorted writes (the overlay is spent afterwards)."""
        return build_writeset(self)

    # -- node state ------------------------------------------------------

    def _load(self, key: bytes) -> Any:
        """The node's current value, reading the committed one if needed."""
        v = self.nodes.get(key, ABSENT)
        if v is ABSENT:
            if self._is_tomb(key):
                v = TOMB
            else:
                b = self.base[key] = self.reader.node(key)
                v = MISSING if b is None else b
            self.nodes[key] = v
        elif v.__class__ is Stub:
            b = self.base[key] = self.reader.node(key)
            if b is None:
                v = dict(v.props)
            elif v.beneath:
                v = {**v.props, **b}
            else:
                v = b
            self.nodes[key] = v
        return v

    def _tombstoned(self, key: bytes) -> bool:
        v = self.nodes.get(key, ABSENT)
        return v is TOMB or (v is ABSENT and self._is_tomb(key))

    def _write(self, key: bytes, old: dict | None, new: dict | None,
               touched: Iterable[str] | None = None) -> None:
        """Record a node change and keep its index entries and lookup in step.

        ``touched`` (the properties a merge set) lets a change that leaves
        every derived property alone skip the index work.
        """
        self.dirty[key] = None
        code = key[0]
        derived = DERIVED_FIELDS.get(code)
        if derived is not None and (touched is None or old is None or not derived.isdisjoint(touched)):
            if code in INDEXED_CODES:
                before, after = index_keys(key, old), index_keys(key, new)
                if before != after:
                    idx = self.idx
                    for k in before - after:
                        idx[(k, key)] = False
                    for k in after - before:
                        idx[(k, key)] = True
            if code in LOOKUP_CODES:
                before_l, after_l = lookup_key(key, old), lookup_key(key, new)
                if before_l != after_l:
                    if before_l is not None and self._lookup(before_l) == key:
                        self.lookups[before_l] = None
                        self.lookups_dirty[before_l] = None
                    if after_l is not None:
                        self.lookups[after_l] = key
                        self.lookups_dirty[after_l] = None
        if self.precise:
            if new is None:
                if old is not None:
                    self.changes.append((self.position, NODE_DELETED, key, 0, b"", old, None))
            else:
                if old is None:
                    changed = None  # a new node: every property is new (README: absent)
                else:
                    get = old.get
                    changed = sorted([k for k, v in new.items() if get(k, ABSENT) != v]
                                     + [k for k in old if k not in new])
                self.changes.append((self.position, NODE_UPSERTED, key, 0, b"", new, changed))

    def _lookup(self, lkey: bytes) -> bytes | None:
        v = self.lookups.get(lkey, ABSENT)
        if v is ABSENT:
            v = self.lookups[lkey] = self.reader.lookup(lkey)
        return v

    def _stamps(self, key: bytes) -> dict:
        """The stamp map of a stamped node, to change: written with the batch."""
        st = self.stamps.get(key)
        if st is None:
            sk = stamps.stamp_key(key)
            st = self.stamps[key] = stamps.decode(self.reader.lookup(sk))
            self.lookups[sk] = st  # type: ignore[assignment] - encoded by build_writeset
            self.lookups_dirty[sk] = None
        return st

    # -- node mutations ----------------------------------------------------

    def set(self, key: bytes, props: dict) -> None:
        """``SET``: the node's properties become ``props``."""
        if not self.precise and key[0] in BLIND_CODES:
            if not self._tombstoned(key):
                self.nodes[key] = props
                self.dirty[key] = None
            return
        cur = self._load(key)
        if cur is TOMB:
            return
        old = None if cur is MISSING else cur
        if old != props:
            self.nodes[key] = props
            self._write(key, old, props)

    def create(self, key: bytes, props: dict) -> None:
        """``CREATE``: ``props`` beneath the properties the node already has.

        A creation logged after later events about the node (a webhook
        retried, or delivered in parallel) must not undo them: what they set
        stays, and the creation fills in the rest.
        """
        if not self.precise and key[0] in BLIND_CODES and key not in self.nodes:
            self._blind(key, props, beneath=True)  # its creation usually comes first
            return
        if key[0] in _STAMPED:
            self._newer(key, props)
            return
        cur = self._load(key)
        if cur is TOMB:
            return
        if cur is MISSING:
            self.nodes[key] = props
            self._write(key, None, props)
            return
        new = {**props, **cur}
        if new != cur:
            self.nodes[key] = new
            self._write(key, cur, new, [k for k in props if k not in cur])

    def merge(self, key: bytes, patch: dict) -> None:
        """``MERGE``: merge ``patch`` into the properties (``None`` removes one)."""
        if key[0] in _STAMPED:
            self._newer(key, patch)
            return
        cur = self._load(key)
        if cur is TOMB:
            return
        old = None if cur is MISSING else cur
        new = {**old, **patch} if old else dict(patch)
        if None in patch.values():
            for k, v in patch.items():
                if v is None:
                    del new[k]
        if new != old or old is None:
            self.nodes[key] = new
            self._write(key, old, new, patch)

    def ensure(self, key: bytes, props: dict) -> None:
        """``ENSURE``: create the node with ``props`` unless it exists (or is deleted)."""
        if props and key[0] in _STAMPED:
            self._newer(key, props)  # the names an event shows: newer ones win
            return
        v = self.nodes.get(key, ABSENT)
        if v is ABSENT:
            if not self.precise and key[0] in BLIND_CODES:
                self._blind(key, props, beneath=False)
                return
            v = self._load(key)
        if v is MISSING:
            new = dict(props)
            self.nodes[key] = new
            self._write(key, None, new)

    def _newer(self, key: bytes, patch: dict) -> None:
        """What CREATE, MERGE and ENSURE do to a stamped node: each property of ``patch``
        not older than its last write is written (``None`` removes it)."""
        cur = self._load(key)
        if cur is TOMB:
            return
        won = stamps.winners(self._stamps(key), self.at, patch)
        old = None if cur is MISSING else cur
        if old is not None and all(old.get(k, ABSENT) == v for k, v in won.items()):
            return  # newer stamps, the same properties (an actor's names, mostly)
        new = {**old, **won} if old else dict(won)
        if None in won.values():
            for k, v in won.items():
                if v is None:
                    del new[k]
        if new != old or old is None:
            self.nodes[key] = new
            self._write(key, old, new, won)

    def _blind(self, key: bytes, props: dict, *, beneath: bool) -> None:
        """Ensure or create ``key`` without reading it: a stub the store writes at flush
        (see :class:`Stub`), or nothing for a deleted node. Rebuilds only, and only for
        types with no derived keys to keep in step."""
        if self._is_tomb(key):
            self.nodes[key] = TOMB
        else:
            self.nodes[key] = Stub(props, beneath)
            self.dirty[key] = None

    def delete(self, key: bytes) -> None:
        """``DELETE``: the node, its edges and its cascading dependants go."""
        stack = [key]
        while stack:
            k = stack.pop()
            cur = self._load(k)
            if cur is TOMB:
                continue
            for edge, dst in self._edges(k, self.out, self.reader.out_edges):
                self._drop(k, edge, dst)
            for edge, src in self._edges(k, self.inn, self.reader.in_edges):
                self._drop(src, edge, k)
                if src[0] in _CASCADE.get(edge, ()):
                    stack.append(src)
                elif src[0] in _ORPHAN.get(edge, ()) and not self._edges(
                        src, self.out, self.reader.out_edges, edge):
                    stack.append(src)
            self.nodes[k] = TOMB
            self._write(k, None if cur is MISSING else cur, None)

    # -- edges -------------------------------------------------------------

    def _edges(self, key: bytes, pending: list, committed, edge: int | None = None
               ) -> list[tuple[int, bytes]]:
        """Current (edge, other) pairs of ``key`` in one direction (one edge type if given)."""
        edges: dict[tuple[int, bytes], Any] = {}
        if self.base.get(key, ABSENT) is not None:
            for pair in (committed(key) if edge is None else committed(key, edge)):
                edges[pair] = True
        for code in (_EDGE_CODES if edge is None else (edge,)):
            others = pending[code].get(key)
            if others:
                for other, v in others.items():
                    edges[(code, other)] = v
        return sorted(pair for pair, v in edges.items() if v is not None)

    def _committed_edge(self, src: bytes, edge: int, dst: bytes) -> Any:
        """The edge's committed value (``True`` or its props) or None, precise mode only."""
        base = self.base
        if base.get(src, ABSENT) is None or base.get(dst, ABSENT) is None:
            return None
        if not self.reader.has_edge(src, edge, dst):
            return None
        if edge not in _PROPS_EDGES:
            return True
        return self.reader.edge_props(src, edge, dst) or True

    def link(self, src: bytes, edge: int, dst: bytes, props: dict | None = None) -> None:
        """``LINK``: add the edge or replace its properties."""
        nodes = self.nodes
        vs, vd = nodes.get(src), nodes.get(dst)
        src_live = vs.__class__ is dict or vs.__class__ is Stub
        dst_live = vd.__class__ is dict or vd.__class__ is Stub
        if not (src_live and dst_live):
            # A link to a deleted node is dropped; its other end is still met (a stub), as
            # it is when the deletion comes later: the graph does not depend on the order.
            is_tomb = self._is_tomb
            src_gone = not src_live and (vs is TOMB or (vs is None and is_tomb(src)))
            dst_gone = not dst_live and (vd is TOMB or (vd is None and is_tomb(dst)))
            if not src_live and not src_gone:
                self.ensure(src, {})
            if not dst_live and not dst_gone:
                self.ensure(dst, {})
            if src_gone or dst_gone:
                return
        if src[0] in _STAMPED and edge in _STAMPED_EDGES and not stamps.may_link(self._stamps(src), self.at, edge, dst):
            return
        value = props or True
        by_src = self.out[edge]
        dsts = by_src.get(src)
        if dsts is None:
            dsts = by_src[src] = {}
        if self.precise:
            cur = dsts.get(dst, ABSENT)
            if cur is ABSENT:
                cur = self._committed_edge(src, edge, dst)
            if cur == value:
                return
            kind = EDGE_ADDED if cur is None else EDGE_UPDATED
            self.changes.append((self.position, kind, src, edge, dst, props, None))
        dsts[dst] = value
        by_dst = self.inn[edge]
        srcs = by_dst.get(dst)
        if srcs is None:
            srcs = by_dst[dst] = {}
        srcs[src] = value

    def attach(self, src: bytes, edge: int, dst: bytes) -> None:
        """``ATTACH``: a creation's single-valued link, unless a move already set one
        (stamped: unless a newer one did; the link replaces older ones)."""
        if src[0] in _STAMPED and edge in _STAMPED_EDGES:
            self.clear(src, edge)
            self.link(src, edge, dst, None)
        elif not self._edges(src, self.out, self.reader.out_edges, edge):
            self.link(src, edge, dst, None)

    def unlink(self, src: bytes, edge: int, dst: bytes) -> None:
        """``UNLINK``: remove the edge if present (stamped: and older adds stay out)."""
        if src[0] in _STAMPED and edge in _STAMPED_EDGES and (
                self._tombstoned(src) or not stamps.may_unlink(self._stamps(src), self.at, edge, dst)):
            return
        dsts = self.out[edge].get(src)
        cur = dsts.get(dst, ABSENT) if dsts is not None else ABSENT
        if cur is None:
            return
        if cur is ABSENT:
            base = self.base
            if base.get(src, ABSENT) is None or base.get(dst, ABSENT) is None:
                return
            if self.precise and self._committed_edge(src, edge, dst) is None:
                return
        self._drop(src, edge, dst)

    def _drop(self, src: bytes, edge: int, dst: bytes) -> None:
        self.out[edge].setdefault(src, {})[dst] = None
        self.inn[edge].setdefault(dst, {})[src] = None
        if self.precise:
            self.changes.append((self.position, EDGE_REMOVED, src, edge, dst, None, None))

    def clear(self, src: bytes, edge: int) -> None:
        """``CLEAR``: remove every out-edge of type ``edge`` from ``src`` (stamped: those
        added no later, and older adds stay out)."""
        present = [dst for _, dst in self._edges(src, self.out, self.reader.out_edges, edge)]
        if src[0] in _STAMPED and edge in _STAMPED_EDGES:
            if self._tombstoned(src):
                return
            present = stamps.clear(self._stamps(src), self.at, edge, present)
        for dst in present:
            self._drop(src, edge, dst)

    # -- references --------------------------------------------------------

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
        issue = self._lookup(iid_lookup(b"i", source, target_project, number))
        if issue is None or issue == src:
            return
        edge = _MENTIONS
        if mode == m.CLOSE:
            edge = _CLOSES
        elif mode == m.CLOSE_ON_DEFAULT:
            pushed_to = self._load(_PROJECT + source + pack_int(project_id))
            default = pushed_to.get("default_branch") if pushed_to.__class__ is dict else None
            if (branch == default) if default else (branch in _DEFAULT_BRANCHES):
                edge = _CLOSES
        self.link(src, edge, issue, None)

    def link_iid(self, src: bytes, edge: int, kind: bytes, source: bytes, project_id: int,
                 iid: int) -> None:
        """``LINK_IID``: link ``src`` to the issue or merge request ``iid`` of a project, if known."""
        target = self._lookup(iid_lookup(kind, source, project_id, iid))
        if target is not None and target != src:
            self.link(src, edge, target, None)

    def join_group(self, project: bytes, source: bytes, namespace: str) -> None:
        """``JOIN_GROUP``: the project is in the group at full path ``namespace``, if known."""
        group = self._resolve_path(source, namespace, _GROUP_CODE)
        if group is None or self._tombstoned(project):
            return
        self.merge(project, {"group_id": key_int(group)})
        self.clear(project, _IN_GROUP)
        self.link(project, _IN_GROUP, group, None)

    def _resolve_path(self, source: bytes, path: str, code: int = _PROJECT_CODE) -> bytes | None:
        """The project (or group) at ``group/sub/project`` as the graph knows paths now."""
        node = self._lookup(path_lookup(source, path))
        if node is not None and node[0] == code:
            return node
        segments = path.split("/")
        node = self._lookup(root_lookup(source, segments[0]))
        for i in range(1, len(segments)):
            child = None
            if node is not None and node[0] == _GROUP_CODE:
                child = self._lookup(child_lookup(node, segments[i]))
            if child is None and i < len(segments) - 1:  # a subgroup known by its full path
                child = self._lookup(path_lookup(source, "/".join(segments[: i + 1])))
            node = child
        return node if node is not None and node[0] == code else None


# Unbound, so that an overlay holds no reference cycle and is freed at once
# even with the garbage collector paused during a batch.
_OPS = {
    m.SET: Overlay.set, m.MERGE: Overlay.merge, m.ENSURE: Overlay.ensure, m.DELETE: Overlay.delete,
    m.LINK: Overlay.link, m.UNLINK: Overlay.unlink, m.CLEAR: Overlay.clear, m.REF: Overlay.ref,
    m.CREATE: Overlay.create, m.ATTACH: Overlay.attach, m.LINK_IID: Overlay.link_iid,
    m.JOIN_GROUP: Overlay.join_group,
}
