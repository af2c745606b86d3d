"""The MCP server of the graph, built on the official SDK's low-level ``Server``.

:func:`build_server` answers ``tools/list``, ``tools/call`` (:mod:`.tools`, in a
thread: LMDB reads block), ``resources/list`` and ``resources/read`` (the
ontology and the query language's schema). :func:`serve_stdio` runs it over
stdin/stdout for ``fleet mcp``; :mod:`.http` serves the same server at the
api's ``/mcp``. Each tool call is a span ``mcp tools/call <tool>`` and counts
in ``fleet.mcp.tool.calls`` by tool and outcome.
"""

from __future__ import annotations

import json
import logging
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import anyio
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp.types import (
    INVALID_PARAMS,
    CallToolResult,
    ListResourcesResult,
    ListToolsResult,
    ReadResourceResult,
    Resource,
    TextContent,
    TextResourceContents,
    Tool,
    ToolAnnotations,
)
from opentelemetry import metrics, trace

from events.errors import NotFound
from projections.errors import ProjectionError
from projections.read.reader import GraphReader

from .tools import TOOLS, ToolError, call_tool, encode, resources

__all__ = ["INSTRUCTIONS", "build_server", "serve_stdio"]

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)
_calls = metrics.get_meter(__name__).create_counter(
    "fleet.mcp.tool.calls", unit="{call}", description="MCP tool calls by tool and outcome")

INSTRUCTIONS = (
    "graphfleet's knowledge graph of software development: groups, projects, users, issues, merge "
    "requests, labels, milestones, commits, comments and branches, and how they relate. Start with "
    "graph_schema (node and edge types), find nodes with find_nodes or get_node, walk with neighbors "
    "and path, and ask anything else with run_query (the graph query language). Answers are bounded: "
    "when `truncated` is true, pass `cursor` back for the next page.")


def _version() -> str:
    try:
        return version("graphfleet")
    except PackageNotFoundError:  # pragma: no cover - a checkout run without installing
        return "0"


def build_server(reader: GraphReader) -> Server:
    """An MCP server answering from ``reader`` (which the caller closes)."""
    tools = [Tool(name=name, description=t["description"], input_schema=t["input_schema"],
                  annotations=ToolAnnotations(read_only_hint=True, destructive_hint=False,
                                              idempotent_hint=True, open_world_hint=False))
             for name, t in TOOLS.items()]
    offered = resources()

    async def list_tools(ctx: Any, params: Any) -> ListToolsResult:
        return ListToolsResult(tools=tools)

    async def call(ctx: Any, params: Any) -> CallToolResult:
        name = params.name
        if name not in TOOLS:
            raise MCPError(INVALID_PARAMS, f"no tool {name!r} - the tools are {', '.join(TOOLS)}")
        started = time.monotonic()
        with _tracer.start_as_current_span(f"mcp tools/call {name}", attributes={"mcp.tool": name}) as span:
            try:
                answer = await anyio.to_thread.run_sync(call_tool, reader, name, params.arguments)
                text = encode(answer).decode()
                result = CallToolResult(content=[TextContent(text=text)],
                                        structured_content=json.loads(text))
                outcome = "ok"
            except ToolError as e:
                result, outcome = _error(str(e)), "bad_call"
            except (NotFound, ProjectionError) as e:
                result, outcome = _error(f"the graph cannot answer yet: {e}"), "no_projection"
            except Exception:
                log.exception("mcp tool failed", extra={"tool": name})
                result, outcome = _error("the tool failed; the server's log has the traceback"), "error"
                span.set_status(trace.Status(trace.StatusCode.ERROR, outcome))
            span.set_attribute("mcp.tool.outcome", outcome)
        _calls.add(1, {"tool": name, "outcome": outcome})
        log.info("mcp tool call", extra={"tool": name, "outcome": outcome,
                                         "duration_ms": round((time.monotonic() - started) * 1000, 3)})
        return result

    async def list_resources(ctx: Any, params: Any) -> ListResourcesResult:
        return ListResourcesResult(resources=[
            Resource(uri=uri, name=name, description=description, mime_type="application/json")
            for uri, (name, description, _) in offered.items()])

    async def read_resource(ctx: Any, params: Any) -> ReadResourceResult:
        uri = str(params.uri)
        if uri not in offered:
            raise MCPError(INVALID_PARAMS, f"no resource {uri!r} - the resources are {', '.join(offered)}")
        return ReadResourceResult(contents=[TextResourceContents(
            uri=uri, mime_type="application/json", text=json.dumps(offered[uri][2], indent=2))])

    return Server("graphfleet", version=_version(), instructions=INSTRUCTIONS,
                  get_tool_input_schema=lambda name: TOOLS[name]["input_schema"] if name in TOOLS else None,
                  on_list_tools=list_tools, on_call_tool=call, on_list_resources=list_resources,
                  on_read_resource=read_resource)


def _error(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(text=message)], is_error=True)


async def serve_stdio(projections_dir: str | Path) -> None:
    """Serve the graph under ``projections_dir`` over stdin/stdout until stdin closes."""
    with GraphReader(projections_dir) as reader:
        server = build_server(reader)
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
