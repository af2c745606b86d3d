"""The MCP tools over the graph: their names, descriptions and input schemas, and how a call
is answered (blocking: the server runs it in a thread).

Every tool but ``graph_schema`` and ``get_node`` is a document of the query
language (:mod:`projections.read.query`), so its answer is bounded (``limit``, the
language's work budget) and pages with ``cursor``. Arguments are checked
against the tool's input schema with ``jsonschema``; a bad one is a
:class:`ToolError` naming it, which the server returns as a tool error the
agent can read and correct.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonschema
import msgspec

from projections.errors import QueryError, UnknownNode
from projections.model.ontology import EDGE_TYPES, NODE_TYPES, ontology_dict
from projections.read.query.execute import run_query
from projections.read.query.schema import DEFAULT_BUDGET_MS, MAX_PATH_DEPTH, InvalidQuery, query_json_schema
from projections.read.reader import GraphReader

__all__ = ["ONTOLOGY_URI", "QUERY_SCHEMA_URI", "TOOLS", "ToolError", "call_tool", "encode", "resources"]

ONTOLOGY_URI = "graph://ontology"
QUERY_SCHEMA_URI = "graph://query-schema"
#: the budget of a tool call's query unless run_query gives one: an agent waits on it
_BUDGET = {"max_nodes": 20_000, "max_ms": DEFAULT_BUDGET_MS}
_NODE_NAMES = [t.name for t in NODE_TYPES]
_EDGE_NAMES = [e.name for e in EDGE_TYPES]
_ID = {"type": "string", "minLength": 1, "maxLength": 1024,
       "description": "A node id (issue:gitlab:12, user:gitlab:3, project:gitlab:7) or a path "
                      "(gitlab:group/project, gitlab:group/project#12 an issue, gitlab:group/project!3 "
                      "a merge request)."}
_CURSOR = {"type": "string", "minLength": 1, "maxLength": 4096,
           "description": "The `cursor` of the previous answer, for the next page (same other "
                          "arguments)."}
_EDGES = {"type": "array", "items": {"enum": _EDGE_NAMES}, "minItems": 1, "uniqueItems": True,
          "description": "Only these edge types (default: all)."}


class ToolError(Exception):
    """A tool call that cannot be answered as asked: the message says what to change."""


def _object(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}


def _run_query_schema() -> dict:
    """The language's schema under ``query``, its ``$defs`` lifted to the top (refs resolve)."""
    language = copy.deepcopy(query_json_schema())
    defs = language.pop("$defs", {})
    for key in ("$schema", "$id"):
        language.pop(key, None)
    schema = _object({"query": language}, ("query",))
    schema["$defs"] = defs
    return schema


TOOLS: dict[str, dict[str, Any]] = {
    "graph_schema": {
        "description": (
            "The graph's ontology: every node type with its properties (and their types), every "
            "edge type with the node types it joins, and the indexed properties. Call it first to "
            "learn what find_nodes, neighbors and run_query can ask for."),
        "input_schema": _object({}),
    },
    "find_nodes": {
        "description": (
            "Nodes of one type whose properties match `where`, e.g. {\"type\": \"Issue\", \"where\": "
            "{\"state\": \"opened\", \"created_at\": {\"gte\": \"2026-01-01\"}}}. A condition is a value "
            "(equality) or an object of eq, ne, in, contains, starts_with, gt, gte, lt, lte, exists. "
            "Answers at most `limit` nodes (id, type, props); `truncated` true with a `cursor` means "
            "there are more: call again with the cursor."),
        "input_schema": _object({
            "type": {"enum": _NODE_NAMES, "description": "The node type (see graph_schema)."},
            "where": {"type": "object", "description": "Property conditions, all of which hold."},
            "source": {"type": "string", "description": "Only nodes from this source (gitlab, github...)."},
            "order_by": {"type": "string", "description": "Sort by this property (default: id order)."},
            "descending": {"type": "boolean", "default": False},
            "limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 20},
            "cursor": _CURSOR,
        }, ("type",)),
    },
    "get_node": {
        "description": "One node by id or path: its type and all its properties.",
        "input_schema": _object({"id": _ID}, ("id",)),
    },
    "neighbors": {
        "description": (
            "The edges at one node: for each, the edge type, its direction (out: node -> other, "
            "in: other -> node) and the other node's id. Filter by edge types and direction; "
            "`truncated` with a `cursor` means there are more."),
        "input_schema": _object({
            "id": _ID, "edges": _EDGES,
            "direction": {"enum": ["out", "in", "both"], "default": "both"},
            "limit": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50},
            "cursor": _CURSOR,
        }, ("id",)),
    },
    "path": {
        "description": (
            "A shortest path between two nodes (ids or paths), as steps {from, edge, direction, to}. "
            "`found` false with `truncated` false: no path of at most `max_depth` edges; with "
            "`truncated` true: the search stopped at its budget and a path may exist."),
        "input_schema": _object({
            "from": _ID, "to": _ID, "edges": _EDGES,
            "directed": {"type": "boolean", "default": False,
                         "description": "Follow edges only in their direction."},
            "max_depth": {"type": "integer", "minimum": 1, "maximum": MAX_PATH_DEPTH, "default": 4},
        }, ("from", "to")),
    },
    "run_query": {
        "description": (
            "Run one query of the graph query language (its JSON Schema is this tool's input "
            "schema, also the resource graph://query-schema): `nodes` (a selector), `neighbors`, "
            "`traversal` (from a selector along up to 3 hops of steps), `path`, `aggregate` "
            "(group_by a property, an edge or the node type, count). Selectors take type, id, "
            "where, with/without (edge conditions). Example: {\"query\": {\"type\": \"traversal\", "
            "\"from\": {\"id\": \"gitlab:group/project#12\"}, \"steps\": [{\"edges\": [\"BLOCKS\"], "
            "\"direction\": \"in\"}]}}. Answers have items, truncated, cursor and budget."),
        "input_schema": _run_query_schema(),
    },
}

_VALIDATORS = {name: jsonschema.Draft202012Validator(tool["input_schema"]) for name, tool in TOOLS.items()}


def resources() -> dict[str, tuple[str, str, dict]]:
    """uri -> (name, description, JSON content) of the resources the server offers."""
    return {
        ONTOLOGY_URI: ("ontology", "Node and edge types of the graph with their properties",
                       ontology_dict()),
        QUERY_SCHEMA_URI: ("query-schema", "JSON Schema of the graph query language (run_query)",
                           query_json_schema()),
    }


def call_tool(reader: GraphReader, name: str, arguments: dict | None) -> Any:
    """The JSON answer of tool ``name``; :class:`ToolError` for a call to correct.

    ``KeyError`` for a tool that does not exist (a protocol error, not a tool's).
    """
    if name not in TOOLS:
        raise KeyError(name)
    args = dict(arguments or {})
    if name != "run_query":
        _check(name, args)
    try:
        if name == "graph_schema":
            return ontology_dict()
        if name == "get_node":
            return reader.node(args["id"]).as_dict()
        if name == "run_query":
            query = args.get("query")
            if not isinstance(query, dict):
                raise ToolError("give the query document as the `query` argument (an object)")
            return run_query(reader, query)
        return run_query(reader, _document(name, args))
    except InvalidQuery as e:
        raise ToolError(f"{e.reason} - at `{_argument_path(name, e.path)}`") from None
    except UnknownNode as e:
        path = getattr(e, "path", None)
        message = str(e).split(" - at `")[0]
        raise ToolError(message if path is None else
                        f"{message} - at `{_argument_path(name, path)}`") from None
    except QueryError as e:
        raise ToolError(str(e)) from None


def _check(name: str, args: dict) -> None:
    error = jsonschema.exceptions.best_match(_VALIDATORS[name].iter_errors(args))
    if error is not None:
        raise ToolError(f"bad argument: {error.message} - at `{error.json_path}`")


def _document(name: str, args: dict) -> dict:
    """The query document a tool call stands for."""
    if name == "find_nodes":
        select = {"type": args["type"], "where": args.get("where") or {}}
        if "source" in args:
            select["source"] = args["source"]
        doc = {"type": "nodes", "select": select, "limit": args.get("limit", 20)}
        if "order_by" in args:
            doc["order_by"] = {"by": args["order_by"], "desc": args.get("descending", False)}
    elif name == "neighbors":
        doc = {"type": "neighbors", "from": {"id": args["id"]}, "direction": args.get("direction", "both"),
               "limit": args.get("limit", 50), "with_props": True}
        if "edges" in args:
            doc["edges"] = args["edges"]
    else:
        doc = {"type": "path", "from": {"id": args["from"]}, "to": {"id": args["to"]},
               "directed": args.get("directed", False), "max_depth": args.get("max_depth", 4)}
        if "edges" in args:
            doc["edges"] = args["edges"]
    if "cursor" in args:
        doc["cursor"] = args["cursor"]
    doc["budget"] = _BUDGET
    return doc


#: where a tool's arguments sit in the document it stands for: document path -> argument path
_ARGUMENTS = {
    "find_nodes": (("$.select.where", "$.where"), ("$.select.type", "$.type"),
                   ("$.select.source", "$.source"), ("$.order_by.by", "$.order_by"), ("$.select", "$")),
    "neighbors": (("$.from.id", "$.id"),),
    "path": (("$.from.id", "$.from"), ("$.to.id", "$.to")),
    "run_query": (("$", "$.query"),),
}


def _argument_path(name: str, path: str) -> str:
    for inside, argument in _ARGUMENTS.get(name, ()):
        if path == inside or path.startswith((inside + ".", inside + "[")):
            return argument + path[len(inside):]
    return path


def encode(answer: Any) -> bytes:
    """An answer as JSON (times as RFC 3339)."""
    return msgspec.json.encode(answer)
