"""The planner: a parsed query document in, a plan out (pure: no LMDB, no clock).

The plan fixes everything that does not need the graph: its selectors
compiled (:mod:`.selector`: conditions checked against the ontology, the
access path of each start), its steps as edge codes by direction, the sort
order, the page size, the decoded cursor and the work budget. Node ids and
paths stay text: :mod:`.execute` resolves them in its snapshot. Plans are
dataclasses with slots, read-only by convention (a frozen one costs four times
as much to build, which a neighbors query through the language would feel).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from projections.model.ontology import edge_type

from . import cursor as cursors
from .schema import (
    DEFAULT_BUDGET_MS,
    DEFAULT_BUDGET_NODES,
    MAX_HOPS,
    AggregateQuery,
    EdgeRef,
    InvalidQuery,
    NeighborsQuery,
    NodesQuery,
    OrderBy,
    PathQuery,
    Query,
    Selector,
    Step,
    TraversalQuery,
)
from .selector import Access, Match, access_path, compile_selector, edge_pairs, prop_kind

__all__ = [
    "AggregatePlan",
    "Group",
    "NeighborsPlan",
    "NodesPlan",
    "Order",
    "PathPlan",
    "Plan",
    "Source",
    "StepPlan",
    "TraversalPlan",
    "plan",
]


@dataclass(frozen=True)
class Order:
    """Sort by ``by`` (a property, ``id``, ``depth``, ``count`` or ``key``)."""

    by: str
    desc: bool = False


@dataclass(frozen=True)
class StepPlan:
    """One relationship step: ``groups`` are (direction, edge codes or None for all)."""

    groups: tuple[tuple[str, frozenset[int] | None], ...]
    depth: int
    match: Match | None


@dataclass(slots=True)
class Source:
    """Where a set of nodes comes from: a selector, or a start and steps."""

    match: Match
    access: Access
    steps: tuple[StepPlan, ...] = ()
    return_all: bool = False
    select: Match | None = None


@dataclass(frozen=True)
class Group:
    """One group key: ``kind`` is property, edge or node_type."""

    kind: str
    prop: str | None = None
    edges: tuple[tuple[int, str], ...] = ()


@dataclass(slots=True)
class _Paged:
    limit: int
    after: list | None
    query: Any  # the parsed document, for the fingerprint of the cursors this plan's answers give
    max_nodes: int
    max_ms: int

    @property
    def fingerprint(self) -> str:
        """What a cursor of this query carries (computed when a cursor is made: most answers
        fit a page)."""
        return cursors.fingerprint(self.query)


@dataclass(slots=True)
class NodesPlan(_Paged):
    source: Source
    order: Order | None


@dataclass(slots=True)
class NeighborsPlan(_Paged):
    ref: str
    start: Match
    direction: str
    codes: frozenset[int] | None
    select: Match | None
    with_props: bool


@dataclass(slots=True)
class TraversalPlan(_Paged):
    source: Source
    order: Order | None


@dataclass(slots=True)
class PathPlan(_Paged):
    src: Match
    dst: Match
    codes: frozenset[int] | None
    directed: bool
    max_depth: int


@dataclass(slots=True)
class AggregatePlan(_Paged):
    source: Source
    groups: tuple[Group, ...]
    order: Order


Plan = NodesPlan | NeighborsPlan | TraversalPlan | PathPlan | AggregatePlan


def plan(query: Query) -> Plan:
    """The plan of a parsed query; raises :class:`InvalidQuery` naming the JSON path."""
    budget = query.budget
    paged = {
        "query": query,
        "max_nodes": budget.max_nodes if budget else DEFAULT_BUDGET_NODES,
        "max_ms": budget.max_ms if budget else DEFAULT_BUDGET_MS,
    }
    given = getattr(query, "cursor", None)
    after = cursors.decode(given, cursors.fingerprint(query)) if given else None
    if isinstance(query, NodesQuery):
        match = compile_selector(query.select, "$.select")
        return NodesPlan(limit=query.limit, after=after, **paged,
                         source=Source(match, access_path(match, "$.select")),
                         order=_order(query.order_by, match.types, ("id",)))
    if isinstance(query, NeighborsQuery):
        start = compile_selector(query.from_, "$.from")
        _require_id(start, "$.from")
        return NeighborsPlan(limit=query.limit, after=after, **paged, ref=start.ref, start=start,
                             direction=query.direction, codes=_codes(query.edges),
                             select=compile_selector(query.select, "$.select") if query.select else None,
                             with_props=query.with_props)
    if isinstance(query, TraversalQuery):
        source = _walk(query.from_, query.steps, query.return_, query.select)
        types = _returned_types(source)
        return TraversalPlan(limit=query.limit, after=after, **paged, source=source,
                             order=_order(query.order_by, types, ("id", "depth")))
    if isinstance(query, PathQuery):
        src, dst = compile_selector(query.from_, "$.from"), compile_selector(query.to, "$.to")
        _require_id(src, "$.from")
        _require_id(dst, "$.to")
        return PathPlan(limit=1, after=None, **paged, src=src, dst=dst, codes=_codes(query.edges),
                        directed=query.directed, max_depth=query.max_depth)
    if isinstance(query, AggregateQuery):
        return _aggregate(query, after, paged)
    raise InvalidQuery("$.type", f"unknown query type {type(query).__name__}")  # pragma: no cover


def _aggregate(query: AggregateQuery, after: list | None, paged: dict) -> AggregatePlan:
    if (query.select is None) == (query.from_ is None):
        raise InvalidQuery("$", "an aggregate takes either `select` (nodes) or `from` and `steps`"
                           " (a traversal)")
    if query.select is not None:
        if query.steps is not None:
            raise InvalidQuery("$.steps", "`steps` go with `from`, not with `select`")
        match = compile_selector(query.select, "$.select")
        source = Source(match, access_path(match, "$.select"))
        types = match.types
    else:
        if query.steps is None:
            raise InvalidQuery("$", "`from` needs `steps` - or use `select` to aggregate nodes")
        source = _walk(query.from_, query.steps, query.return_, None)
        types = _returned_types(source)
    groups = []
    for i, g in enumerate(query.group_by):
        path = f"$.group_by[{i}]"
        given = [k for k, v in (("property", g.property), ("edge", g.edge),
                                ("node_type", g.node_type or None)) if v is not None]
        if len(given) != 1:
            raise InvalidQuery(path, "a group key has exactly one of `property`, `edge`, "
                               f"`node_type`, got {', '.join(given) or 'none'}")
        if g.property is not None:
            prop_kind(g.property, types, f"{path}.property")
            groups.append(Group("property", prop=g.property))
        elif g.edge is not None:
            groups.append(Group("edge", edges=edge_pairs([g.edge], g.direction)))
        else:
            groups.append(Group("node_type"))
    order = query.order_by or _COUNT_DESC
    if order.by not in ("count", "key"):
        raise InvalidQuery("$.order_by.by", f"an aggregate is ordered by `count` or `key`, got {order.by!r}")
    return AggregatePlan(limit=query.limit, after=after, **paged, source=source,
                         groups=tuple(groups), order=Order(order.by, order.desc))


_COUNT_DESC = OrderBy("count", desc=True)


def _walk(start: Selector, steps: list[Step], returned: str, select: Selector | None) -> Source:
    hops = sum(s.depth for s in steps)
    if hops > MAX_HOPS:
        raise InvalidQuery("$.steps", f"the steps walk {hops} hops; at most {MAX_HOPS} in all "
                           "- lower a step's `depth` or start nearer")
    match = compile_selector(start, "$.from")
    planned = tuple(_step(s, f"$.steps[{i}]") for i, s in enumerate(steps))
    return Source(match, access_path(match, "$.from"), planned, returned == "all",
                  compile_selector(select, "$.select") if select else None)


def _step(step: Step, path: str) -> StepPlan:
    if step.edges is None:
        groups = ((step.direction, None),)
    else:
        by_direction: dict[str, set[int]] = {}
        for e in step.edges:
            name, direction = (e.type, e.direction) if isinstance(e, EdgeRef) else (e, step.direction)
            by_direction.setdefault(direction, set()).add(edge_type(name).code)
        groups = tuple((d, frozenset(c)) for d, c in by_direction.items())
    return StepPlan(groups, step.depth, compile_selector(step.select, f"{path}.select") if step.select else None)


def _returned_types(source: Source) -> frozenset[int] | None:
    if source.select is not None and source.select.types is not None:
        return source.select.types
    last = source.steps[-1].match if source.steps else None
    return None if source.return_all or last is None else last.types


def _require_id(match: Match, path: str) -> None:
    if match.ref is None:
        raise InvalidQuery(path, "name the node by `id` (issue:gitlab:12 or gitlab:group/project#12)")


def _codes(edges: list[str] | None) -> frozenset[int] | None:
    return None if edges is None else frozenset(edge_type(e).code for e in edges)


def _order(order, types: frozenset[int] | None, specials: tuple[str, ...]) -> Order | None:
    if order is None:
        return None
    if order.by in specials:
        return Order(order.by, order.desc)
    prop_kind(order.by, types, "$.order_by.by")
    return Order(order.by, order.desc)
