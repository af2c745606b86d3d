"""Graph queries over HTTP (JSON), answered from the active projection version.

========================================  =============================================
``GET /graph/counts``                     nodes and edges per type, version, position
``GET /graph/nodes/{id}``                 a node with its properties
``GET /graph/nodes/{id}/neighbors``       ``?edge=HAS_LABEL&direction=out&limit=100&after=CURSOR``
``GET /graph/nodes/{id}/hops``            ``?depth=3&max_nodes=1000&edge=...``
``GET /graph/path``                       ``?from=ID&to=ID&max_depth=6&max_nodes=1000000&edge=...``
``GET /graph/types/{type}``               ``?<prop>=<value>&limit=50&after=CURSOR&source=gitlab``
========================================  =============================================

List answers (neighbors, types) are pages: besides their items they carry
``total`` (the whole answer's size; "at least" when ``total_is_lower_bound``),
``truncated`` (more items follow) and ``next``, the opaque cursor to pass as
``after`` for the following page (null on the last page). A cursor that is
not one of the same query's is a 400 ``bad_query``.

A path answer has ``length`` null when none was found; ``truncated`` true
then means the search gave up at ``max_nodes`` visited nodes (a path may
still exist), false that there is no path of at most ``max_depth`` edges.

Ids are the graph's text ids (``issue:gitlab:12``) or the resolvable paths the
CLI accepts (``gitlab:group/project#12``), at most ``MAX_ID_CHARS`` long.
Filter values of ASCII digits are integers (64-bit), ``true``/``false``/``null``
what JSON makes of them, anything else text. Errors are JSON
``{"error", "detail"}``: 404 unknown node, 400 bad parameter, 503 no active
version yet, 500 ``internal`` for anything else (logged with its traceback).
LMDB reads are fast and release the GIL, but queries run in a thread so a
deep traversal never stalls the event loop.

Each query is a span ``GET /graph/<query>`` and counts in
``fleet.api.query.requests`` and ``fleet.api.query.duration`` by query and
outcome; the api's heartbeat carries how many it answered and how many
failed, which ``fleet health`` shows on the api's line.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Callable

import msgspec
from aiohttp import web
from opentelemetry import metrics, trace

from events.errors import NotFound
from projections.errors import ProjectionError, QueryError, UnknownNode
from projections.read.export import export_stream
from projections.read.reader import PATH_MAX_NODES, GraphReader

from .app import context

__all__ = ["MAX_ID_CHARS", "QueryStats", "query_stats", "setup"]

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)
_meter = metrics.get_meter(__name__)
_requests = _meter.create_counter(
    "fleet.api.query.requests", unit="{request}", description="Graph queries by query and outcome")
_duration = _meter.create_histogram(
    "fleet.api.query.duration", unit="s", description="Graph query handling time")


@dataclass
class QueryStats:
    """The graph queries this api process answered since it started (for its heartbeat)."""

    served: int = 0
    #: answered 500: a bug or a broken store, logged with its traceback
    failed: int = 0


_READER = web.AppKey("graph_reader", GraphReader)
_STATS = web.AppKey("graph_query_stats", QueryStats)
_encode = msgspec.json.Encoder().encode
_RESERVED = {"limit", "after", "source"}
#: longest node id or path a request may name: longer ones name no node (an LMDB key
#: holds at most 511 bytes), and a number past 4,300 digits is more than int() reads
MAX_ID_CHARS = 1024
#: integers filter values may be: what 64 bits hold, signed or not
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
#: ASCII only: int() also reads "٣", and isdigit() admits "²", which int() refuses
_INTEGER = re.compile(r"-?[0-9]+")


def setup(app: web.Application) -> None:
    """Add the /graph routes and a reader opened lazily on the projections dir."""
    app.router.add_get("/graph/counts", counts)
    app.router.add_get("/graph/nodes/{id}", node)
    app.router.add_get("/graph/nodes/{id}/neighbors", neighbors)
    app.router.add_get("/graph/nodes/{id}/hops", hops)
    app.router.add_get("/graph/path", path)
    app.router.add_get("/graph/types/{type}", find)
    app.router.add_get("/graph/export", export)
    app.cleanup_ctx.append(_reader)
    app[_STATS] = QueryStats()


def query_stats(app: web.Application) -> QueryStats | None:
    """The app's query counts, None when it serves no queries."""
    return app.get(_STATS)


async def _reader(app: web.Application):
    reader = GraphReader(context(app).settings.projections_dir)
    app[_READER] = reader
    yield
    reader.close()


def _int(request: web.Request, name: str, default: int, low: int = 1, high: int = 100_000) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        if not raw.strip().lstrip("+-").isdecimal():
            raise QueryError(f"{name}={_shown(raw)!r} is not an integer - give one in "
                             f"{low}..{high}") from None
        value = None  # more digits than int() reads
    if value is None or not low <= value <= high:
        raise QueryError(f"{name}={_shown(raw)} is out of range {low}..{high}")
    return value


def _ref(name: str, raw: str | None) -> str | None:
    """The node id or path in parameter ``name``, refused when longer than any can be."""
    if raw is not None and len(raw) > MAX_ID_CHARS:
        raise QueryError(f"{name} is {len(raw)} characters long, over the limit of {MAX_ID_CHARS}"
                         " - node ids are type:source:id (issue:gitlab:12) or paths"
                         " (gitlab:group/project#12)")
    return raw


def _shown(raw: str) -> str:
    """A parameter's value for an error message, cut short: some are thousands of characters."""
    if len(raw) <= 40:
        return raw
    digits = raw.lstrip("+-")
    unit = f"{len(digits)} digits" if digits.isdecimal() else f"{len(raw)} characters"
    return f"{raw[:20]}... ({unit})"


def _error(status: int, error: str, detail: str) -> web.Response:
    return web.json_response({"error": error, "detail": detail}, status=status)


async def _answer(request: web.Request, name: str, query: Callable[[GraphReader], Any]
                  ) -> web.Response:
    """Run ``query`` in a thread and answer JSON; trace it, count it, time it."""
    started = time.monotonic()
    with _tracer.start_as_current_span(f"GET /graph/{name}", kind=trace.SpanKind.SERVER,
                                       attributes={"fleet.query": name}) as span:
        try:
            result = await asyncio.to_thread(query, request.app[_READER])
            if hasattr(result, "as_dict"):
                result = result.as_dict()
            if isinstance(result, dict) and "truncated" in result:  # a page, or a bounded search
                span.set_attribute("fleet.query.truncated", bool(result["truncated"]))
            # msgspec: node properties hold datetimes, which the stdlib encoder refuses
            response = web.Response(body=_encode(result), content_type="application/json")
            outcome = "ok"
        except UnknownNode as e:
            response, outcome = _error(404, "unknown_node", str(e)), "unknown_node"
        except QueryError as e:
            response, outcome = _error(400, "bad_query", str(e)), "bad_query"
        except (NotFound, ProjectionError) as e:
            response, outcome = _error(503, "no_projection", str(e)), "no_projection"
        except Exception:
            log.exception("graph query failed", extra={"query": name, "path": request.path_qs})
            response = _error(500, "internal", "the query failed; the api's log has the traceback")
            outcome = "error"
        span.set_attribute("http.response.status_code", response.status)
        span.set_attribute("fleet.query.outcome", outcome)
        if outcome == "error":
            span.set_status(trace.Status(trace.StatusCode.ERROR, outcome))
    attributes = {"query": name, "outcome": outcome}
    _requests.add(1, attributes)
    _duration.record(time.monotonic() - started, attributes)
    stats = request.app[_STATS]
    stats.served += 1
    stats.failed += outcome == "error"
    return response


async def counts(request: web.Request) -> web.Response:
    return await _answer(request, "counts", lambda r: r.counts())


async def node(request: web.Request) -> web.Response:
    return await _answer(request, "node", lambda r: r.node(_ref("id", request.match_info["id"])))


async def neighbors(request: web.Request) -> web.Response:
    q = request.query
    return await _answer(request, "neighbors", lambda r: r.neighbor_page(
        _ref("id", request.match_info["id"]), edges=q.getall("edge", None),
        direction=q.get("direction", "both"), limit=_int(request, "limit", 100),
        after=_ref("after", q.get("after")), with_props=True).as_dict("neighbors"))


async def hops(request: web.Request) -> web.Response:
    q = request.query
    return await _answer(request, "hops", lambda r: r.hops(
        _ref("id", request.match_info["id"]), _int(request, "depth", 2, high=10),
        edges=q.getall("edge", None), direction=q.get("direction", "both"),
        max_nodes=_int(request, "max_nodes", 1000)))


async def path(request: web.Request) -> web.Response:
    def query(r: GraphReader):
        src, dst = _ref("from", request.query.get("from")), _ref("to", request.query.get("to"))
        if not src or not dst:
            raise QueryError("give both ?from=ID&to=ID")
        return r.path(src, dst, edges=request.query.getall("edge", None),
                      directed=request.query.get("directed", "false").lower() == "true",
                      max_depth=_int(request, "max_depth", 6, high=12),
                      max_nodes=_int(request, "max_nodes", PATH_MAX_NODES, high=10 * PATH_MAX_NODES))

    return await _answer(request, "path", query)


async def find(request: web.Request) -> web.Response:
    q = request.query
    return await _answer(request, "find", lambda r: r.find(
        request.match_info["type"], {k: _value(k, v) for k, v in q.items() if k not in _RESERVED},
        source=q.get("source"), limit=_int(request, "limit", 50, high=1000),
        after=_ref("after", q.get("after"))))


def _value(name: str, raw: str) -> Any:
    """Query-string values: integers and true/false/null as JSON would have them."""
    if _INTEGER.fullmatch(raw):
        value = int(raw) if len(raw) <= 21 else None  # 21 characters hold every 64-bit number
        if value is None or not _INT_MIN <= value <= _INT_MAX:
            raise QueryError(f"{name}={_shown(raw)} is past the 64-bit integers properties hold "
                             f"- filter on a number in {_INT_MIN}..{_INT_MAX}")
        return value
    return {"true": True, "false": False, "null": None}.get(raw, raw)


async def export(request: web.Request) -> web.StreamResponse:
    """The active version (or ``?version=N``) as JSON lines from one read transaction: a header
    with the version, its ``seq`` and digest, then every node and edge (README "Export and digest")."""
    started = time.monotonic()
    version = _int(request, "version", 0, low=1, high=2**31) if "version" in request.query else None
    blocks = export_stream(context(request.app).settings.projections_dir, version=version)
    try:
        first = await blocks.__anext__()  # opens the version: errors before any byte is sent
    except (NotFound, ProjectionError) as e:
        await blocks.aclose()
        outcome = "unknown_version" if version is not None else "no_projection"
        _requests.add(1, {"query": "export", "outcome": outcome})
        return _error(404 if version is not None else 503, outcome, str(e))
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    with _tracer.start_as_current_span("GET /graph/export", kind=trace.SpanKind.SERVER,
                                       attributes={"fleet.query": "export"}):
        try:
            await response.prepare(request)
            await response.write(first)
            async for block in blocks:
                await response.write(block)
        finally:
            await blocks.aclose()  # closes the read transaction and the store
        await response.write_eof()
    _requests.add(1, {"query": "export", "outcome": "ok"})
    _duration.record(time.monotonic() - started, {"query": "export", "outcome": "ok"})
    request.app[_STATS].served += 1
    return response
