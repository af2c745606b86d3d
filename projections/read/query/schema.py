"""The query language's documents: msgspec Structs, their JSON Schema, and parsing.

A query is one JSON object whose ``type`` names its kind (``nodes``,
``neighbors``, ``traversal``, ``path``, ``aggregate``). Parsing checks the
document's shape with msgspec (microseconds, so a query through the language
costs little more than the reader call it becomes); every error names the
JSON path of what is wrong. :func:`query_json_schema` publishes the same
shapes as a JSON Schema 2020-12 document (``fleet schema query``). What the
shape cannot say (a property of the node type, a time that parses, at most
:data:`MAX_HOPS` hops) :mod:`.plan` checks, with a path too.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta, field

from projections.errors import QueryError
from projections.model.ontology import EDGE_TYPES, NODE_TYPES

__all__ = [
    "DEFAULT_BUDGET_MS",
    "DEFAULT_BUDGET_NODES",
    "DEFAULT_LIMIT",
    "MAX_BUDGET_MS",
    "MAX_BUDGET_NODES",
    "MAX_HOPS",
    "MAX_LIMIT",
    "MAX_NESTING",
    "MAX_PATH_DEPTH",
    "AggregateQuery",
    "Budget",
    "EdgeCondition",
    "EdgeRef",
    "GroupKey",
    "InvalidQuery",
    "NeighborsQuery",
    "NodeValue",
    "NodesQuery",
    "Ops",
    "OrderBy",
    "PathQuery",
    "Query",
    "Selector",
    "Step",
    "TraversalQuery",
    "parse",
    "query_json_schema",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
#: hops a traversal may walk in all its steps together
MAX_HOPS = 3
#: selectors inside selectors (``any``, an edge condition's ``node``), counting the outermost
MAX_NESTING = 4
MAX_PATH_DEPTH = 6
DEFAULT_BUDGET_NODES = 100_000
MAX_BUDGET_NODES = 1_000_000
DEFAULT_BUDGET_MS = 2_000
MAX_BUDGET_MS = 30_000
_MAX_ID = 1024


class InvalidQuery(QueryError):
    """A query document that is malformed or asks for what cannot be: ``path`` is the JSON
    path of the culprit (``$.select.where.created_at.gt``), ``reason`` what is wrong with it."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{reason} - at `{path}`")


NodeTypeName = Literal[tuple(t.name for t in NODE_TYPES)]  # type: ignore[valid-type]
EdgeTypeName = Literal[tuple(e.name for e in EDGE_TYPES)]  # type: ignore[valid-type]
Direction = Literal["out", "in", "both"]
NodeRefText = Annotated[str, Meta(min_length=1, max_length=_MAX_ID, description=(
    "A node id (issue:gitlab:12, user:gitlab:3) or a path (gitlab:group/project, "
    "gitlab:group/project#12 for an issue, gitlab:group/project!3 for a merge request)"))]
Scalar = str | int | float | bool | None
Limit = Annotated[int, Meta(ge=1, le=MAX_LIMIT, description=f"Items per page (at most {MAX_LIMIT})")]
Cursor = Annotated[str, Meta(min_length=1, max_length=4096, description=(
    "The `cursor` of the previous answer: the next page of the same query"))]


class NodeValue(msgspec.Struct, forbid_unknown_fields=True):
    """The native id of a node (``{"node": "gitlab:group/project"}`` is the project's number),
    to compare an ``*_id`` property with a node named by path."""

    node: NodeRefText


Value = str | int | float | bool | None | NodeValue
Bound = Annotated[int | float | str, Meta(description=(
    "A number, or for a time property a time as ISO 8601 (2026-01-31T00:00:00Z or 2026-01-31) or "
    "relative to now: now, today, this_week, this_month, this_year, optionally moved by an ISO "
    "8601 duration (now-P7D, this_month-P1D, today+PT9H)"))]


class Ops(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Conditions on one property, all of which must hold."""

    eq: Value | msgspec.UnsetType = msgspec.UNSET
    ne: Value | msgspec.UnsetType = msgspec.UNSET
    in_: Annotated[list[Value], Meta(min_length=1, max_length=1000)] | msgspec.UnsetType = field(
        default=msgspec.UNSET, name="in")
    contains: Annotated[str, Meta(max_length=1000)] | msgspec.UnsetType = msgspec.UNSET
    starts_with: Annotated[str, Meta(max_length=1000)] | msgspec.UnsetType = msgspec.UNSET
    gt: Bound | msgspec.UnsetType = msgspec.UNSET
    gte: Bound | msgspec.UnsetType = msgspec.UNSET
    lt: Bound | msgspec.UnsetType = msgspec.UNSET
    lte: Bound | msgspec.UnsetType = msgspec.UNSET
    exists: bool | msgspec.UnsetType = msgspec.UNSET


#: a bare value means ``{"eq": value}``
Condition = str | int | float | bool | None | Ops
PropName = Annotated[str, Meta(pattern="^[a-z][a-z_]*$", max_length=64)]


class EdgeCondition(msgspec.Struct, forbid_unknown_fields=True):
    """The node has (``with``) or has not (``without``) an edge of a type, in a direction,
    to a node matching ``node`` when given."""

    edge: EdgeTypeName | Annotated[list[EdgeTypeName], Meta(min_length=1, max_length=18)]
    direction: Direction = "out"
    node: Selector | None = None


class Selector(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Which nodes: by id or path, by type, by properties, by edges; all given parts must hold.

    ``any`` is a list of selectors of which at least one must hold as well.
    """

    id: NodeRefText | None = None
    type: NodeTypeName | Annotated[list[NodeTypeName], Meta(min_length=1)] | None = None
    source: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    where: Annotated[dict[PropName, Condition], Meta(max_length=16)] | None = None
    with_: Annotated[list[EdgeCondition], Meta(max_length=8)] | None = field(default=None, name="with")
    without: Annotated[list[EdgeCondition], Meta(max_length=8)] | None = None
    any: Annotated[list[Selector], Meta(min_length=1, max_length=8)] | None = None


class EdgeRef(msgspec.Struct, forbid_unknown_fields=True):
    """An edge type walked in its own direction (else the step's)."""

    type: EdgeTypeName
    direction: Direction = "out"


class Step(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One relationship step: follow ``edges`` (all types when absent) in ``direction``,
    ``depth`` times at most, keeping the nodes that match ``select``."""

    edges: Annotated[list[EdgeTypeName | EdgeRef], Meta(min_length=1, max_length=18)] | None = None
    direction: Direction = "both"
    depth: Annotated[int, Meta(ge=1, le=MAX_HOPS)] = 1
    select: Selector | None = None


class OrderBy(msgspec.Struct, forbid_unknown_fields=True):
    """Sort key: a property name, ``id`` or ``depth`` (traversal); ``count`` or ``key``
    (aggregate). Ties are broken by node id order."""

    by: Annotated[str, Meta(pattern="^[a-z][a-z_]*$", max_length=64)]
    desc: bool = False


class Budget(msgspec.Struct, forbid_unknown_fields=True):
    """How much work the query may do before it stops and says so."""

    max_nodes: Annotated[int, Meta(ge=1, le=MAX_BUDGET_NODES)] = DEFAULT_BUDGET_NODES
    max_ms: Annotated[int, Meta(ge=1, le=MAX_BUDGET_MS)] = DEFAULT_BUDGET_MS


class GroupKey(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """Group by a ``property``, by the node at the other end of an ``edge`` (a node with
    several counts in each group, with none in none), or by the node's ``node_type``."""

    property: PropName | None = None
    edge: EdgeTypeName | None = None
    direction: Direction = "out"
    node_type: bool = False


class _Query(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, omit_defaults=True):
    pass


class NodesQuery(_Query, tag="nodes"):
    """Nodes matching a selector, a page at a time."""

    select: Selector
    order_by: OrderBy | None = None
    limit: Limit = DEFAULT_LIMIT
    cursor: Cursor | None = None
    budget: Budget | None = None


class NeighborsQuery(_Query, tag="neighbors"):
    """The edges at one node (``from`` must name it by ``id``), by type and direction."""

    from_: Selector = field(name="from")
    edges: Annotated[list[EdgeTypeName], Meta(min_length=1, max_length=18)] | None = None
    direction: Direction = "both"
    select: Selector | None = None
    with_props: bool = False
    limit: Limit = DEFAULT_LIMIT
    cursor: Cursor | None = None
    budget: Budget | None = None


class TraversalQuery(_Query, tag="traversal"):
    """Nodes reached from ``from`` along ``steps`` (at most 3 hops in all)."""

    from_: Selector = field(name="from")
    steps: Annotated[list[Step], Meta(min_length=1, max_length=MAX_HOPS)]
    return_: Literal["last", "all"] = field(default="last", name="return")
    select: Selector | None = None
    order_by: OrderBy | None = None
    limit: Limit = DEFAULT_LIMIT
    cursor: Cursor | None = None
    budget: Budget | None = None


class PathQuery(_Query, tag="path"):
    """A shortest path between two nodes named by ``id``."""

    from_: Selector = field(name="from")
    to: Selector
    edges: Annotated[list[EdgeTypeName], Meta(min_length=1, max_length=18)] | None = None
    directed: bool = False
    max_depth: Annotated[int, Meta(ge=1, le=MAX_PATH_DEPTH)] = MAX_PATH_DEPTH
    budget: Budget | None = None


class AggregateQuery(_Query, tag="aggregate"):
    """Count the nodes a ``select`` (or ``from`` + ``steps``) finds, per group."""

    group_by: Annotated[list[GroupKey], Meta(min_length=1, max_length=3)]
    select: Selector | None = None
    from_: Selector | None = field(default=None, name="from")
    steps: Annotated[list[Step], Meta(min_length=1, max_length=MAX_HOPS)] | None = None
    return_: Literal["last", "all"] = field(default="last", name="return")
    order_by: OrderBy | None = None
    limit: Limit = DEFAULT_LIMIT
    cursor: Cursor | None = None
    budget: Budget | None = None


Query = NodesQuery | NeighborsQuery | TraversalQuery | PathQuery | AggregateQuery
QUERY_TYPES = ("nodes", "neighbors", "traversal", "path", "aggregate")

_json_decoder = msgspec.json.Decoder(Query)
_json_encoder = msgspec.json.Encoder()
_AT = re.compile(r"^(.*) - at `(\$[^`]*)`$", re.DOTALL)


def parse(document: bytes | str | dict | Any) -> Query:
    """A query from JSON text or an already decoded object; raises :class:`InvalidQuery`."""
    try:
        if isinstance(document, (bytes, bytearray, memoryview, str)):
            return _json_decoder.decode(document)
        if not isinstance(document, dict):
            raise InvalidQuery("$", f"a query is a JSON object, got {type(document).__name__}")
        try:
            text = _json_encoder.encode(document)
        except (TypeError, ValueError) as e:
            raise InvalidQuery("$", f"the query holds a value JSON has not: {e}") from None
        # Through JSON: msgspec decodes a small document ten times faster than it converts one.
        return _json_decoder.decode(text)
    except msgspec.ValidationError as e:
        raise _invalid(str(e)) from None
    except msgspec.DecodeError as e:
        raise InvalidQuery("$", f"not valid JSON: {e}") from None
    except RecursionError:
        raise InvalidQuery("$", f"the document nests too deep - selectors nest at most "
                           f"{MAX_NESTING} deep") from None


_KEY_AT = re.compile(r"^(.*) - at `key` in `(\$[^`]*)`$", re.DOTALL)
_NODE_NAMES = ", ".join(t.name for t in NODE_TYPES)
_EDGE_NAMES = ", ".join(e.name for e in EDGE_TYPES)


def _invalid(message: str) -> InvalidQuery:
    """msgspec's ``reason - at `$.path``` as an :class:`InvalidQuery`, with the known values."""
    if found := _KEY_AT.match(message):
        return InvalidQuery(found.group(2), f"property names are lower_snake_case: {found.group(1)}")
    found = _AT.match(message)
    reason, path = (found.group(1), found.group(2)) if found else (message, "$")
    if path == "$.type" or (path == "$" and "`type`" in reason):
        reason += f" - the query type is one of: {', '.join(QUERY_TYPES)}"
    elif reason.startswith("Invalid enum value"):
        last = path.rsplit(".", 1)[-1]
        if last.startswith("edge") or (last.startswith("type") and ".edges[" in path):
            reason += f" - edge types: {_EDGE_NAMES}"
        elif last.startswith("type"):
            reason += f" - node types: {_NODE_NAMES}"
        elif last.startswith("direction"):
            reason += " - one of out, in, both"
    return InvalidQuery(path, reason)


def query_json_schema() -> dict:
    """The language's JSON Schema (2020-12), for ``fleet schema query`` and MCP clients."""
    body = msgspec.json.schema(Query)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://graphfleet.invalid/schemas/query.json",
        "title": "graphfleet graph query",
        "description": (
            "One query over the SDLC graph. `type` is nodes, neighbors, traversal, path or "
            "aggregate. Every answer has `items`, `truncated` and `cursor` (pass it back as "
            "`cursor` for the next page), and `budget` (nodes visited, time; `exhausted` when "
            "the query stopped at its budget)."),
        **body,
    }
