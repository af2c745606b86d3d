"""Matching nodes against compiled selectors in one snapshot, and finding their candidates."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from projections.errors import QueryError, UnknownNode
from projections.model.indexing import index_prefix
from projections.model.keys import key_int, key_type, source_prefix
from projections.model.ontology import NODE_TYPES
from projections.read.snapshot import Snapshot

from . import budget
from .plan import Source
from .schema import InvalidQuery
from .selector import Access, EdgeMatch, Match, NodeRef, Pred, RelativeTime

__all__ = ["Matcher"]

_TYPE_NAME = {t.code: t.name for t in NODE_TYPES}


class Matcher:
    """One query's view of a snapshot: node ids it resolved, selectors matched, candidates
    found, each visit counted against its budget (:class:`~.budget.Work`)."""

    def __init__(self, snap: Snapshot, work: budget.Work) -> None:
        self.snap = snap
        self.work = work
        self._refs: dict[str, bytes] = {}
        #: what relative times (``now-P7D``, ``this_month``) count from, one instant per query
        self.now = budget.wall_clock()

    def key(self, ref: str, path: str) -> bytes:
        """The node ``ref`` names, which must exist; errors name ``path``."""
        found = self._refs.get(ref)
        if found is None:
            try:
                found = self.snap.require(self.snap.resolve(ref))
            except UnknownNode as e:
                missing = UnknownNode(f"{e} - at `{path}`")
                missing.path = path  # type: ignore[attr-defined]  # the JSON path, for answers
                raise missing from None
            except QueryError as e:
                raise InvalidQuery(path, str(e)) from None
            self._refs[ref] = found
        return found

    def start(self, match: Match, path: str) -> bytes:
        """The node a by-id selector names, checked against the rest of the selector."""
        key = self.key(match.ref, f"{path}.id")
        if match.types is not None and key[0] not in match.types:
            wanted = " or ".join(_TYPE_NAME[c] for c in sorted(match.types))
            raise InvalidQuery(f"{path}.id", f"{match.ref!r} is a {_TYPE_NAME[key[0]]}, not a {wanted}")
        return key

    def value(self, value: Any) -> Any:
        if isinstance(value, NodeRef):
            key = self.key(value.ref, value.path)
            if key_type(key).id_kind != "int":
                raise InvalidQuery(value.path, f"{value.ref!r} has no numeric id")
            return key_int(key)
        if isinstance(value, RelativeTime):
            return value.at(self.now)
        if isinstance(value, tuple):
            return tuple(self.value(v) for v in value)
        return value

    # -- matching ----------------------------------------------------------

    def matches(self, m: Match, key: bytes, props: dict | None = None) -> bool:
        """Whether node ``key`` matches the selector (its properties read once, if needed)."""
        if m.types is not None and key[0] not in m.types:
            return False
        if m.ref is not None and key != self.key(m.ref, f"{m.path}.id"):
            return False
        if m.source is not None and not key.startswith(source_prefix(m.source), 1):
            return False
        if m.preds:
            if props is None:
                props = self.snap.props(key)
                if props is None:
                    return False
            if not all(self._holds(p, props.get(p.prop)) for p in m.preds):
                return False
        if not all(self.has_edge(key, e) for e in m.with_):
            return False
        if any(self.has_edge(key, e) for e in m.without):
            return False
        return not m.any or any(self.matches(a, key, props) for a in m.any)

    def _holds(self, pred: Pred, found: Any) -> bool:
        op, want = pred.op, self.value(pred.value)
        if op == "eq":
            return found == want and (type(found) is bool) == (type(want) is bool)
        if op == "ne":
            return not (found == want and (type(found) is bool) == (type(want) is bool))
        if op == "in":
            return found is not None and found in want
        if op == "exists":
            return (found is not None) == want
        if found is None:
            return False
        if op == "contains":
            return isinstance(found, str) and want in found
        if op == "starts_with":
            return isinstance(found, str) and found.startswith(want)
        try:
            if op == "gt":
                return found > want
            if op == "gte":
                return found >= want
            if op == "lt":
                return found < want
            return found <= want
        except TypeError:  # a stored value of another type than the ontology says
            return False

    def has_edge(self, key: bytes, e: EdgeMatch) -> bool:
        """Whether ``key`` has one of the edges ``e`` names, to a node matching its ``node``."""
        target = e.node
        if target is None:
            return any(True for _ in self.others(key, e.edges, first=True))
        if target.ref is not None:
            exact = self.key(target.ref, f"{target.path}.id")
            return any(self.matches(target, o) for o in self.others(key, e.edges, exact=exact))
        for other in self.others(key, e.edges):
            self.work.visit()
            if self.matches(target, other):
                return True
        return False

    def others(self, key: bytes, edges: tuple[tuple[int, str], ...], *,
                exact: bytes | None = None, first: bool = False) -> Iterator[bytes]:
        """The nodes at the other end of ``edges`` from ``key``: only ``exact`` when given,
        only the first of each table with ``first``."""
        for code, direction in edges:
            for _, _, db in self.snap.plan(direction, frozenset((code,))).get(key[0], ()):
                c = self.snap.cursor(db)
                if exact is not None:
                    if c.set_key_dup(key, exact):
                        yield exact
                elif c.set_key(key):
                    if first:
                        yield c.value()
                    else:
                        # Read the run now: the caller may use this cursor before the next item.
                        yield from list(c.iternext_dup())

    # -- candidates ----------------------------------------------------------

    def candidates(self, source: Source, after: bytes | None = None) -> Iterator[bytes]:
        """The keys a top-level selector's access path yields, in key order, after ``after``."""
        access = source.access
        if access.kind == "id":
            key = self.start(source.match, source.match.path)
            if after is None or key > after:
                yield key
        elif access.kind == "index":
            yield from self._index(access, source.match, after)
        elif access.kind == "anchor":
            anchor = self.key(access.ref, _anchor_path(source.match))
            found = set(self.others(anchor, access.edges))
            yield from sorted(k for k in found if after is None or k > after)
        else:
            for code in access.types:
                yield from self.snap.type_scan(code, after)

    def _index(self, access: Access, match: Match, after: bytes | None) -> Iterator[bytes]:
        code = next(iter(match.types))
        values = [self.value(v) for v in access.values]
        sources = [match.source] if match.source else self._sources(code)
        for s in sorted(sources, key=source_prefix):
            yield from self.snap.index_scan(index_prefix(access.index, source_prefix(s), values), after)

    def _sources(self, code: int) -> list[str]:
        """The event sources with nodes of a type (one seek per source)."""
        found = []
        c = self.snap.cursor(self.snap.store.env.nodes[code])
        ok = c.set_range(bytes([code]))
        while ok:
            k = c.key()
            end = k.index(0, 1)
            found.append(k[1:end].decode())
            ok = c.set_range(k[:end] + b"\x01")
        return found

    def select(self, source: Source, out: list) -> None:
        """Append every node a selector matches to ``out``, in key order, with its properties
        (what was found before the budget ran out stays)."""
        for key in self.candidates(source):
            self.work.visit()
            props = self.snap.props(key)
            if props is not None and self.matches(source.match, key, props):
                out.append((key, props))


def _anchor_path(match: Match) -> str:
    for i, e in enumerate(match.with_):
        if e.node is not None and e.node.ref is not None:
            return f"{match.path}.with[{i}].node.id"
    return match.path
