"""Selectors, compiled (pure): conditions on a node, and the cheapest way to its candidates.

A selector of a query document (``select``, ``from``, a step's ``select``, an
edge condition's ``node``) becomes a :class:`Match`: node types and edge codes
by number, each property condition checked against the ontology with its value
converted (times parsed, or kept relative to when the query runs), nested
selectors at most :data:`~.schema.MAX_NESTING` deep. A top-level selector also
gets an :class:`Access`: by id, an index, the edges of an anchor node, or a
scan of its types. Matches are dataclasses with slots, read-only by convention
(a frozen one costs four times as much to build).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec

from projections.model.ontology import INDEXES, NODE_TYPES, Index, edge_type, node_type

from .schema import MAX_NESTING, EdgeCondition, InvalidQuery, NodeValue, Ops, Selector

__all__ = ["Access", "EdgeMatch", "Match", "NodeRef", "Pred", "RelativeTime", "access_path",
           "compile_selector", "edge_pairs", "parse_time", "prop_kind"]

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


def edge_pairs(edges: str | list[str], direction: str) -> tuple[tuple[int, str], ...]:
    """(edge code, "out" or "in") for each edge type named; ``both`` is both sides."""
    names = [edges] if isinstance(edges, str) else edges
    sides = ("out", "in") if direction == "both" else (direction,)
    return tuple((edge_type(n).code, d) for n in dict.fromkeys(names) for d in sides)


# -- selectors -----------------------------------------------------------------


def compile_selector(sel: Selector, path: str, depth: int = 1) -> Match:
    """The :class:`Match` of a selector at JSON path ``path``; :class:`InvalidQuery` naming
    the path of what the ontology does not have."""
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
        kind = prop_kind(prop, types, at)
        preds += _preds(prop, kind, condition, at)
    return Match(
        path=path, ref=sel.id, types=types, source=sel.source, preds=tuple(preds),
        with_=tuple(_edge_match(c, f"{path}.with[{i}]", depth) for i, c in enumerate(sel.with_ or ())),
        without=tuple(_edge_match(c, f"{path}.without[{i}]", depth)
                      for i, c in enumerate(sel.without or ())),
        any=tuple(compile_selector(s, f"{path}.any[{i}]", depth + 1) for i, s in enumerate(sel.any or ())),
    )


def _edge_match(cond: EdgeCondition, path: str, depth: int) -> EdgeMatch:
    node = compile_selector(cond.node, f"{path}.node", depth + 1) if cond.node is not None else None
    return EdgeMatch(edge_pairs(cond.edge, cond.direction), node)


def prop_kind(prop: str, types: frozenset[int] | None, path: str) -> str:
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


# -- access paths --------------------------------------------------------------


def access_path(match: Match, path: str) -> Access:
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

