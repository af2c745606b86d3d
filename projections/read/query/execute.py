"""Runs a plan over one read snapshot of the graph, within the plan's work budget.

Every answer is a dict: ``type``, ``version``, ``items``, ``truncated`` (more
items exist than this page holds, or the budget stopped the work), ``cursor``
(the next page, or null) and ``budget`` (``nodes_visited``, ``elapsed_ms`` and
``exhausted``: null, ``"nodes"`` or ``"time"``). A node is visited when it is
reached: read as a candidate, or found new by a traversal or a path search.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import islice, product
from typing import Any

import msgspec

from projections.model.keys import format_key
from projections.model.ontology import EDGE_TYPES, NODE_TYPES
from projections.read.reader import GraphReader
from projections.read.traverse import shortest_path

from . import cursor as cursors
from .budget import BudgetHit, Work
from .match import Matcher
from .order import compare, compare_count, sort_key
from .plan import (
    AggregatePlan,
    NeighborsPlan,
    NodesPlan,
    Order,
    PathPlan,
    Plan,
    Source,
    TraversalPlan,
    plan,
)
from .schema import parse
from .selector import Match

__all__ = ["BudgetHit", "execute", "run_query"]

_EDGE_NAME = {e.code: e.name for e in EDGE_TYPES}
_PROPS_EDGES = frozenset(e.code for e in EDGE_TYPES if e.props)
_TYPE_NAME = {t.code: t.name for t in NODE_TYPES}


def run_query(reader: GraphReader, document: Any) -> dict:
    """Parse, plan and execute one query document (JSON text or a decoded object)."""
    return execute(reader, plan(parse(document)))


def execute(reader: GraphReader, planned: Plan) -> dict:
    """The answer to a plan, from one read snapshot of the reader's current version."""
    work = Work(planned.max_nodes, planned.max_ms)
    with reader.snapshot() as snap:
        run = _Run(snap, work)
        if isinstance(planned, NeighborsPlan):
            answer = run.neighbors(planned)
        elif isinstance(planned, NodesPlan):
            answer = run.nodes(planned)
        elif isinstance(planned, TraversalPlan):
            answer = run.traversal(planned)
        elif isinstance(planned, PathPlan):
            answer = run.path(planned)
        else:
            answer = run.aggregate(planned)
        answer["version"] = snap.version
    answer["budget"] = work.report()
    return answer


class _Run(Matcher):
    """One query's execution: the query kinds over the matcher's snapshot."""

    # -- queries -------------------------------------------------------------

    def nodes(self, p: NodesPlan) -> dict:
        if p.order is not None:
            selected: list = []
            exhausted = self._guard(lambda: self.select(p.source, selected))
            found = [(k, props, 0) for k, props in selected]
            return self._sorted_page("nodes", p, found, exhausted, with_depth=False)
        after = bytes.fromhex(p.after[0]) if p.after else None
        items: list[tuple[bytes, dict]] = []
        last = None
        try:
            for key in self.candidates(p.source, after):
                self.work.visit()
                last = key
                props = self.snap.props(key)
                if props is not None and self.matches(p.source.match, key, props):
                    items.append((key, props))
                    if len(items) > p.limit:
                        break
        except BudgetHit:
            pass
        page = items[: p.limit]
        if len(items) > p.limit:
            resume = page[-1][0]
        elif self.work.exhausted and last is not None:
            resume = last  # the scan goes on after the last node it read, matched or not
        else:
            resume = None
        return {"type": "nodes", "items": [_node(k, props) for k, props in page],
                "truncated": resume is not None or self.work.exhausted is not None,
                "cursor": None if resume is None else cursors.encode(p.fingerprint, [resume.hex()])}

    def neighbors(self, p: NeighborsPlan) -> dict:
        key = self.start(p.start, "$.from")
        after_table, after_key = (p.after[0], bytes.fromhex(p.after[1])) if p.after else (0, None)
        items: list[dict] = []
        positions: list[tuple[int, bytes]] = []
        more = False
        want = p.limit + 1
        examined: tuple[int, bytes] | None = None  # a filtered walk's last edge read, not kept
        try:
            cursor = self.snap.cursor
            for i, (code, d, db) in enumerate(self.snap.plan(p.direction, p.codes)[key[0]]):
                if i < after_table:
                    continue
                c = cursor(db)
                if after_key is not None and i == after_table:
                    if not c.set_range_dup(key, after_key):
                        continue
                    others: Iterable[bytes] = (o for o in c.iternext_dup() if o != after_key)
                elif not c.set_key(key):
                    continue
                else:
                    others = c.iternext_dup()
                name = _EDGE_NAME[code]
                if p.select is None:
                    chunk = list(islice(others, want - len(items)))
                    if not chunk:
                        continue
                    self.work.visit(len(chunk))
                    if p.with_props and code in _PROPS_EDGES:
                        items += [self._neighbor(name, d, key, code, o, True) for o in chunk]
                    else:
                        items += [{"edge": name, "direction": d, "id": format_key(o)} for o in chunk]
                    positions += [(i, o) for o in chunk]
                else:
                    for o in others:
                        self.work.visit()
                        if self.matches(p.select, o):
                            items.append(self._neighbor(name, d, key, code, o, p.with_props))
                            positions.append((i, o))
                            if len(items) >= want:
                                break
                        examined = (i, o)
                if len(items) >= want:
                    more = True
                    break
        except BudgetHit:
            more = True
        if len(items) > p.limit or examined is None:
            items = items[: p.limit]
            last = positions[len(items) - 1] if items else None
        else:  # the budget stopped a filtered walk: go on after the last edge it read
            last = examined
        next_cursor = (cursors.encode(p.fingerprint, [last[0], last[1].hex()])
                       if more and last is not None else None)
        return {"type": "neighbors", "items": items, "truncated": more, "cursor": next_cursor}

    def _neighbor(self, name: str, d: str, key: bytes, code: int, other: bytes, with_props: bool
                  ) -> dict:
        out = {"edge": name, "direction": d, "id": format_key(other)}
        if with_props and code in _PROPS_EDGES:
            props = self.snap.edge_props(*((key, code, other) if d == "out" else (other, code, key)))
            if props:
                out["props"] = props
        return out

    def walk(self, source: Source, reached: dict[bytes, int]) -> None:
        """Fill ``reached`` with the nodes a traversal returns (before its ``select``):
        key -> hops from the start, the first found. Filled as they are found, so what a
        budget cut short stays.

        Each step walks breadth first from the nodes the step before found, ``depth``
        levels at most, and keeps the nodes its ``select`` matches; a step may reach a
        node an earlier step reached (a pattern, not a tree).
        """
        starts = []
        for key in self.candidates(source):
            if source.access.kind != "id":
                self.work.visit()
            if self.matches(source.match, key):
                starts.append(key)
        frontier = starts
        hop = 0
        last = source.steps[-1] if source.steps else None
        for step in source.steps:
            keep = source.return_all or step is last
            match = step.match
            # a select on node types alone is decided by the key's first byte, without a read
            types = match.types if match is not None else None
            if match is not None and match == Match(match.path, types=types):
                match = None
            expanders = [self.snap.expander(d, codes) for d, codes in step.groups]
            seen = set(frontier)
            rejected: set[bytes] = set()
            found: list[bytes] = []
            level = frontier
            for _ in range(step.depth):
                hop += 1
                following = []
                for node in level:
                    for expand in expanders:
                        for other in expand(node):
                            if other in seen or other in rejected or (
                                    types is not None and other[0] not in types):
                                continue
                            self.work.visit()
                            if match is not None and not self.matches(match, other):
                                rejected.add(other)
                                continue
                            seen.add(other)
                            following.append(other)
                            if keep and other not in reached:
                                reached[other] = hop
                found += following
                level = following
                if not level:
                    break
            frontier = found

    def reach(self, source: Source) -> tuple[dict[bytes, int], bool]:
        """What a traversal returns, and whether the budget cut it short."""
        reached: dict[bytes, int] = {}
        exhausted = self._guard(lambda: self.walk(source, reached))
        if source.select is not None:
            kept = {}
            try:
                for k, d in reached.items():
                    if self.matches(source.select, k):
                        kept[k] = d
            except BudgetHit:
                exhausted = True
            reached = kept
        return reached, exhausted

    def traversal(self, p: TraversalPlan) -> dict:
        reached, exhausted = self.reach(p.source)
        found = [(k, None, d) for k, d in reached.items()]
        return self._sorted_page("traversal", p, found, exhausted, with_depth=True)

    def _sorted_page(self, kind: str, p: NodesPlan | TraversalPlan,
                     found: list[tuple[bytes, dict | None, int]], exhausted: bool,
                     with_depth: bool) -> dict:
        order = p.order or Order("id")
        if order.by not in ("id", "depth"):
            found = [(k, props if props is not None else self.snap.props(k), d)
                     for k, props, d in found]
        keyed = [(sort_key(order, k, props, d), k, props, d) for k, props, d in found]
        rank = functools.cmp_to_key(lambda a, b: compare(a, b, order.desc))
        keyed.sort(key=lambda item: rank(item[0]))
        if p.after is not None:
            bound = rank(p.after)
            keyed = [item for item in keyed if rank(item[0]) > bound]
        page = keyed[: p.limit]
        more = len(keyed) > p.limit
        items = []
        for _, k, props, d in page:
            item = _node(k, props if props is not None else self.snap.props(k) or {})
            if with_depth:
                item["depth"] = d
            items.append(item)
        return {"type": kind, "items": items, "truncated": more or exhausted,
                "cursor": cursors.encode(p.fingerprint, page[-1][0]) if more else None}

    def path(self, p: PathPlan) -> dict:
        src, dst = self.start(p.src, "$.from"), self.start(p.dst, "$.to")
        forward_direction = "out" if p.directed else "both"
        work = self.work

        def counted(expand: Callable[[bytes], Iterable[bytes]]) -> Callable[[bytes], Iterable[bytes]]:
            def expand_counted(node: bytes) -> Iterable[bytes]:
                work.clock()
                return expand(node)
            return expand_counted

        forward = counted(self.snap.expander(forward_direction, p.codes))
        backward = counted(self.snap.expander("in", p.codes)) if p.directed else forward
        degree = self.snap.degree(forward_direction, p.codes)
        degrees = (degree, self.snap.degree("in", p.codes) if p.directed else degree)
        try:
            found = shortest_path(src, dst, forward, backward, max_depth=p.max_depth,
                                  max_nodes=p.max_nodes, degrees=degrees)
        except BudgetHit:
            found = None
        if found is not None:
            work.visited = min(found.visited, p.max_nodes)
            if found.truncated:
                work.exhausted = "nodes"
        steps = None
        if found is not None and found.nodes is not None:
            steps = [s.as_dict() for s in self.snap.steps(found.nodes, forward_direction, p.codes)]
        return {"type": "path", "found": steps is not None,
                "length": None if steps is None else len(steps), "items": steps or [],
                "truncated": found is None or found.truncated, "cursor": None,
                "visited": work.visited}

    def aggregate(self, p: AggregatePlan) -> dict:
        members: list[tuple[bytes, dict | None]] = []
        if p.source.steps:
            reached, exhausted = self.reach(p.source)
            members = [(k, None) for k in reached]
        else:
            exhausted = self._guard(lambda: self.select(p.source, members))
        counts: Counter = Counter()
        try:
            for key, props in members:
                parts = []
                for g in p.groups:
                    if g.kind == "property":
                        if props is None:
                            props = self.snap.props(key) or {}
                        parts.append([_plain(props.get(g.prop))])
                    elif g.kind == "edge":
                        parts.append(sorted(format_key(o) for o in self.others(key, g.edges)))
                    else:
                        parts.append([_TYPE_NAME[key[0]]])
                for combo in product(*parts):
                    counts[combo] += 1
        except BudgetHit:
            exhausted = True
        rows = [([n, msgspec.json.encode(list(k)).decode()], k, n) for k, n in counts.items()]
        desc = p.order.desc
        if p.order.by == "count":
            rank = functools.cmp_to_key(lambda a, b: compare_count(a, b, desc))
        else:
            rank = functools.cmp_to_key(lambda a, b: compare_count(a[::-1], b[::-1], desc))
        rows.sort(key=lambda r: rank(r[0]))
        if p.after is not None:
            bound = rank(p.after)
            rows = [r for r in rows if rank(r[0]) > bound]
        page = rows[: p.limit]
        more = len(rows) > p.limit
        edge_parts = [i for i, g in enumerate(p.groups) if g.kind == "edge"]
        items = []
        for _, k, n in page:
            item: dict[str, Any] = {"key": list(k), "count": n}
            if edge_parts:
                item["nodes"] = {k[i]: self._brief(k[i]) for i in edge_parts}
            items.append(item)
        return {"type": "aggregate", "items": items, "truncated": more or exhausted,
                "cursor": cursors.encode(p.fingerprint, page[-1][0]) if more else None,
                "groups": len(counts) if not exhausted else None}

    def _brief(self, node_id: str) -> dict:
        key = self.snap.resolve(node_id)
        return {"type": _TYPE_NAME[key[0]], "props": self.snap.props(key) or {}}

    def _guard(self, work: Callable[[], None]) -> bool:
        """Run ``work``; True when the budget stopped it (what it gathered so far stays)."""
        try:
            work()
        except BudgetHit:
            return True
        return False


def _node(key: bytes, props: dict | None) -> dict:
    return {"id": format_key(key), "type": _TYPE_NAME[key[0]], "props": props or {}}


def _plain(value: Any) -> Any:
    """A group key's value as JSON has it (times as ISO 8601 text)."""
    return value.isoformat() if hasattr(value, "isoformat") else value
