"""The planner: a parsed query document in, a plan out (pure: no LMDB, no clock).

The plan fixes everything that does not need the graph: node types and edge
codes by number, each property condition checked against the ontology and its
value converted (times parsed), the access path of every selector (a node by
id, the edges of an anchor node, an index, or a scan of its type), the sort
order, the page size, the decoded cursor and the work budget. Node ids and
paths stay text: :mod:`.execute` resolves them in its snapshot. Plans are
dataclasses with slots, read-only by convention (a frozen one costs four times
as much to build, which a neighbors query through the language would feel).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec

from projections.model.ontology import INDEXES, NODE_TYPES, Index, edge_type, node_type

from . import cursor as cursors
from .schema import (
    DEFAULT_BUDGET_MS,
    DEFAULT_BUDGET_NODES,
    MAX_HOPS,
    MAX_NESTING,
    AggregateQuery,
    EdgeCondition,
    EdgeRef,
    InvalidQuery,
    NeighborsQuery,
    NodesQuery,
    NodeValue,
    Ops,
    OrderBy,
    PathQuery,
    Query,
    Selector,
    Step,
    TraversalQuery,
)

__all__ = [
    "Access",
    "AggregatePlan",
    "EdgeMatch",
    "Group",
    "Match",
    "NeighborsPlan",
    "NodeRef",
    "NodesPlan",
    "Order",
    "PathPlan",
    "Plan",
    "Pred",
    "RelativeTime",
    "Source",
    "StepPlan",
    "TraversalPlan",
    "plan",
]

_TYPES_BY_CODE = {t.code: t for t in NODE_TYPES}
_ALL_TYPES = frozenset(_TYPES_BY_CODE)
_NUMERIC = ("int", "datetime")


@dataclass(frozen=True)
class NodeRef:
    """A node named by id or path whose native id is the value (resolved when executed)."""

    ref: str
    path: str


@dataclass(frozen=True)
class Pred:
    """One condition on one property: ``op`` is eq, ne, in, contains, starts_with, gt, gte,
    lt, lte or exists; ``value`` is converted (a datetime for a time, a tuple for ``in``)."""

    prop: str
    op: str
    value: Any


@dataclass(frozen=True)
class EdgeMatch:
    """An edge of one of ``edges`` ((code, "out"|"in") pairs) to a node matching ``node``."""

    edges: tuple[tuple[int, str], ...]
    node: Match | None


@dataclass(slots=True)
class Match:
    """A selector, compiled. ``path`` is its JSON path, for errors found when executed."""

    path: str
    ref: str | None = None
    types: frozenset[int] | None = None
    source: str | None = None
    preds: tuple[Pred, ...] = ()
    with_: tuple[EdgeMatch, ...] = ()
    without: tuple[EdgeMatch, ...] = ()
    any: tuple[Match, ...] = ()


@dataclass(slots=True)
class Access:
    """Where a selector's candidates come from, cheapest first.

    ``id``: the one node ``ref`` names. ``index``: the entries of ``index`` for ``values``
    (a NodeRef stands for a node's native id). ``anchor``: the nodes at the other end of
    ``edges`` from the node ``ref`` names. ``scan``: every node of ``types``.
    """

    kind: str
    ref: str | None = None
    index: Index | None = None
    values: tuple = ()
    edges: tuple[tuple[int, str], ...] = ()
    types: tuple[int, ...] = ()


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
        match = _match(query.select, "$.select")
        return NodesPlan(limit=query.limit, after=after, **paged,
                         source=Source(match, _access(match, "$.select")),
                         order=_order(query.order_by, match.types, ("id",)))
    if isinstance(query, NeighborsQuery):
        start = _match(query.from_, "$.from")
        _require_id(start, "$.from")
        return NeighborsPlan(limit=query.limit, after=after, **paged, ref=start.ref, start=start,
                             direction=query.direction, codes=_codes(query.edges),
                             select=_match(query.select, "$.select") if query.select else None,
                             with_props=query.with_props)
    if isinstance(query, TraversalQuery):
        source = _walk(query.from_, query.steps, query.return_, query.select)
        types = _returned_types(source)
        return TraversalPlan(limit=query.limit, after=after, **paged, source=source,
                             order=_order(query.order_by, types, ("id", "depth")))
    if isinstance(query, PathQuery):
        src, dst = _match(query.from_, "$.from"), _match(query.to, "$.to")
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
        match = _match(query.select, "$.select")
        source = Source(match, _access(match, "$.select"))
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
            _prop_kind(g.property, types, f"{path}.property")
            groups.append(Group("property", prop=g.property))
        elif g.edge is not None:
            groups.append(Group("edge", edges=_pairs([g.edge], g.direction)))
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
    match = _match(start, "$.from")
    planned = tuple(_step(s, f"$.steps[{i}]") for i, s in enumerate(steps))
    return Source(match, _access(match, "$.from"), planned, returned == "all",
                  _match(select, "$.select") if select else None)


def _step(step: Step, path: str) -> StepPlan:
    if step.edges is None:
        groups = ((step.direction, None),)
    else:
        by_direction: dict[str, set[int]] = {}
        for e in step.edges:
            name, direction = (e.type, e.direction) if isinstance(e, EdgeRef) else (e, step.direction)
            by_direction.setdefault(direction, set()).add(edge_type(name).code)
        groups = tuple((d, frozenset(c)) for d, c in by_direction.items())
    return StepPlan(groups, step.depth, _match(step.select, f"{path}.select") if step.select else None)


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


def _pairs(edges: str | list[str], direction: str) -> tuple[tuple[int, str], ...]:
    names = [edges] if isinstance(edges, str) else edges
    sides = ("out", "in") if direction == "both" else (direction,)
    return tuple((edge_type(n).code, d) for n in dict.fromkeys(names) for d in sides)


# -- selectors -----------------------------------------------------------------


def _match(sel: Selector, path: str, depth: int = 1) -> Match:
    if depth > MAX_NESTING:
        raise InvalidQuery(path, f"selectors nest at most {MAX_NESTING} deep (`any`, `with`/`without`"
                           " with a `node`) - split the question into queries")
    if sel.type is None and sel.where is None and sel.with_ is None and sel.without is None \
            and sel.any is None:  # the common {"id": ...}: a query's start
        return Match(path, ref=sel.id, source=sel.source)
    types = None
    if sel.type is not None:
        names = [sel.type] if isinstance(sel.type, str) else sel.type
        types = frozenset(node_type(n).code for n in names)
    preds = []
    for prop, condition in (sel.where or {}).items():
        at = f"{path}.where.{prop}"
        kind = _prop_kind(prop, types, at)
        preds += _preds(prop, kind, condition, at)
    return Match(
        path=path, ref=sel.id, types=types, source=sel.source, preds=tuple(preds),
        with_=tuple(_edge_match(c, f"{path}.with[{i}]", depth) for i, c in enumerate(sel.with_ or ())),
        without=tuple(_edge_match(c, f"{path}.without[{i}]", depth)
                      for i, c in enumerate(sel.without or ())),
        any=tuple(_match(s, f"{path}.any[{i}]", depth + 1) for i, s in enumerate(sel.any or ())),
    )


def _edge_match(cond: EdgeCondition, path: str, depth: int) -> EdgeMatch:
    node = _match(cond.node, f"{path}.node", depth + 1) if cond.node is not None else None
    return EdgeMatch(_pairs(cond.edge, cond.direction), node)


def _prop_kind(prop: str, types: frozenset[int] | None, path: str) -> str:
    """The property's type (str, int, bool, datetime) in the selector's node types."""
    among = [_TYPES_BY_CODE[c] for c in sorted(types if types is not None else _ALL_TYPES)]
    kinds = {t.props[prop] for t in among if prop in t.props}
    if not kinds:
        if types is not None and len(among) == 1:
            raise InvalidQuery(path, f"{among[0].name} has no property {prop!r} - it has: "
                               f"{', '.join(among[0].props)}")
        where = ", ".join(t.name for t in among) if types is not None else "any node type"
        raise InvalidQuery(path, f"no property {prop!r} in {where}")
    if len(kinds) > 1:
        raise InvalidQuery(path, f"{prop!r} is a {' or '.join(sorted(kinds))} depending on the node "
                           "type - give the selector a `type`")
    return kinds.pop()


def _preds(prop: str, kind: str, condition: Any, path: str) -> list[Pred]:
    if not isinstance(condition, Ops):
        return [Pred(prop, "eq", _value(condition, kind, path))]
    out = []
    for op in ("eq", "ne", "in_", "contains", "starts_with", "gt", "gte", "lt", "lte", "exists"):
        raw = getattr(condition, op)
        if raw is msgspec.UNSET:
            continue
        name = op.rstrip("_")
        at = f"{path}.{name}"
        if name in ("eq", "ne"):
            out.append(Pred(prop, name, _value(raw, kind, at)))
        elif name == "in":
            out.append(Pred(prop, "in", tuple(_value(v, kind, f"{at}[{i}]") for i, v in enumerate(raw))))
        elif name in ("contains", "starts_with"):
            if kind != "str":
                raise InvalidQuery(at, f"`{name}` is for text; {prop!r} is a {kind}")
            out.append(Pred(prop, name, raw))
        elif name == "exists":
            out.append(Pred(prop, name, raw))
        else:
            if kind not in _NUMERIC:
                raise InvalidQuery(at, f"`{name}` compares numbers and times; {prop!r} is a {kind}")
            out.append(Pred(prop, name, _value(raw, kind, at)))
    return out


def _value(raw: Any, kind: str, path: str) -> Any:
    """A filter value converted to the property's type, or :class:`InvalidQuery`."""
    if raw is None:
        return None
    if isinstance(raw, NodeValue):
        if kind != "int":
            raise InvalidQuery(path, f"a node's id compares with a number property, not a {kind}")
        return NodeRef(raw.node, f"{path}.node")
    if kind == "datetime":
        if not isinstance(raw, str):
            raise InvalidQuery(path, f"expected a time as ISO 8601 text (2026-01-31T12:00:00Z), "
                               f"got {raw!r}")
        return parse_time(raw, path)
    ok = {"int": lambda v: isinstance(v, int) and not isinstance(v, bool),
          "str": lambda v: isinstance(v, str), "bool": lambda v: isinstance(v, bool)}[kind]
    if not ok(raw):
        want = {"int": "an integer", "str": "text", "bool": "true or false"}[kind]
        raise InvalidQuery(path, f"expected {want}, got {msgspec.json.encode(raw).decode()[:60]}")
    return raw


@dataclass(frozen=True)
class RelativeTime:
    """A time relative to when the query runs: the start of ``anchor`` (``now``, ``today``,
    ``this_week``, ``this_month``, ``this_year``, in UTC) moved by ``offset``."""

    anchor: str
    offset: timedelta = timedelta(0)

    def at(self, now: datetime) -> datetime:
        """The time this stands for when the query runs at ``now`` (UTC)."""
        if self.anchor == "now":
            start = now
        else:
            start = now.replace(hour=0, minute=0, second=0, microsecond=0)
            if self.anchor == "this_week":
                start -= timedelta(days=start.weekday())
            elif self.anchor == "this_month":
                start = start.replace(day=1)
            elif self.anchor == "this_year":
                start = start.replace(month=1, day=1)
        return start + self.offset


_ANCHORS = ("now", "today", "this_week", "this_month", "this_year")
_RELATIVE = re.compile(r"^(now|today|this_week|this_month|this_year)(?:([+-])P(?:(\d{1,5})W)?"
                       r"(?:(\d{1,5})D)?(?:T(?:(\d{1,6})H)?(?:(\d{1,8})M)?(?:(\d{1,9})S)?)?)?$")


def parse_time(text: str, path: str) -> datetime | RelativeTime:
    """An ISO 8601 time (a date alone is its midnight; naive times are UTC), or a time relative
    to the query's run: ``now``, ``today``, ``this_week`` (Monday), ``this_month``,
    ``this_year``, each optionally moved by an ISO 8601 duration of weeks, days, hours, minutes
    and seconds (``now-P7D``, ``this_month-P1D``, ``today+PT9H``)."""
    if text.startswith(_ANCHORS):
        found = _RELATIVE.match(text)
        if found is None or text.endswith(("P", "T")):
            raise InvalidQuery(path, f"{text[:60]!r} is not a relative time - e.g. now-P7D, "
                               "this_month, today-PT6H (weeks, days, hours, minutes, seconds)")
        anchor, sign, *parts = found.groups()
        weeks, days, hours, minutes, seconds = (int(x or 0) for x in parts)
        offset = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
        return RelativeTime(anchor, -offset if sign == "-" else offset)
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC)
        found = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidQuery(path, f"{text[:60]!r} is not an ISO 8601 time - e.g. 2026-01-31 or "
                           "2026-01-31T12:00:00Z") from None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


def _order(order, types: frozenset[int] | None, specials: tuple[str, ...]) -> Order | None:
    if order is None:
        return None
    if order.by in specials:
        return Order(order.by, order.desc)
    _prop_kind(order.by, types, "$.order_by.by")
    return Order(order.by, order.desc)


# -- access paths --------------------------------------------------------------


def _access(match: Match, path: str) -> Access:
    """The cheapest way to the candidates of a top-level selector."""
    if match.ref is not None:
        return Access("id", ref=match.ref)
    index = _best_index(match)
    if index is not None and len(index[0].fields) > 1:
        return Access("index", index=index[0], values=index[1])
    for edge in match.with_:
        if edge.node is not None and edge.node.ref is not None:
            flipped = tuple((code, "in" if d == "out" else "out") for code, d in edge.edges)
            return Access("anchor", ref=edge.node.ref, edges=flipped)
    if index is not None:
        return Access("index", index=index[0], values=index[1])
    if match.types is None:
        raise InvalidQuery(path, "give the selector a `type`, an `id`, or a `with` edge to a node "
                           "named by `id` - scanning every node of the graph is not a query")
    return Access("scan", types=tuple(sorted(match.types)))


def _best_index(match: Match) -> tuple[Index, tuple] | None:
    if match.types is None or len(match.types) != 1:
        return None
    name = _TYPES_BY_CODE[next(iter(match.types))].name
    eq = {p.prop: p.value for p in match.preds if p.op == "eq" and p.value is not None}
    best = None
    for index in INDEXES:
        if (index.node_type == name and all(f in eq for f in index.fields)
                and (best is None or len(index.fields) > len(best.fields))):
            best = index
    return None if best is None else (best, tuple(eq[f] for f in best.fields))

