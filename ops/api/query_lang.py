"""``POST /graph/query``: one query document of the graph query language in, its answer out.

The body is a JSON query (README "Query language", ``fleet schema query``);
the answer is the executor's JSON (``items``, ``truncated``, ``cursor``,
``budget``, ``version``). Errors are ``{"error", "detail", "path"}``, ``path``
being the JSON path of the culprit in the document: 400 ``bad_query``, 404
``unknown_node``, 503 ``no_projection`` before the first version is built,
500 ``internal`` (logged with its traceback). The query runs in a thread,
within its work budget.

Each query is a span ``POST /graph/query`` and counts in
``fleet.api.graph_query.requests`` (by query type, outcome, and ``budget``:
``within``, or ``nodes`` / ``time`` when it stopped at its budget) and
``.duration``, and in the api's heartbeat with the other graph queries.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import msgspec
from aiohttp import web
from opentelemetry import metrics, trace

from events.errors import NotFound
from projections.errors import ProjectionError, QueryError, UnknownNode
from projections.read.query.execute import execute
from projections.read.query.plan import plan
from projections.read.query.schema import InvalidQuery, parse
from projections.read.reader import GraphReader

from .app import context
from .queries import query_stats

__all__ = ["answer_query", "setup"]

log = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)
_meter = metrics.get_meter(__name__)
_requests = _meter.create_counter(
    "fleet.api.graph_query.requests", unit="{request}",
    description="Query-language documents answered, by query type and outcome")
_duration = _meter.create_histogram(
    "fleet.api.graph_query.duration", unit="s", description="Query-language handling time")
_READER = web.AppKey("query_lang_reader", GraphReader)
_encode = msgspec.json.Encoder().encode


def setup(app: web.Application) -> None:
    """Add ``POST /graph/query`` and a reader of the projections dir."""
    app.router.add_post("/graph/query", graph_query)
    app.cleanup_ctx.append(_reader)


async def _reader(app: web.Application):
    reader = GraphReader(context(app).settings.projections_dir)
    app[_READER] = reader
    yield
    reader.close()


def answer_query(reader: GraphReader, document: Any) -> tuple[int, dict, str, str]:
    """``(status, JSON body, query type, outcome)`` for one document, errors included
    (blocking: run it in a thread)."""
    kind = "unknown"
    try:
        planned = plan(parse(document))
        kind = type(planned).__name__.removesuffix("Plan").lower()
        answer = execute(reader, planned)
    except InvalidQuery as e:
        return 400, {"error": "bad_query", "detail": str(e), "path": e.path}, kind, "bad_query"
    except UnknownNode as e:
        return (404, {"error": "unknown_node", "detail": str(e), "path": getattr(e, "path", "$")},
                kind, "unknown_node")
    except QueryError as e:
        return 400, {"error": "bad_query", "detail": str(e), "path": "$"}, kind, "bad_query"
    except (NotFound, ProjectionError) as e:
        return 503, {"error": "no_projection", "detail": str(e)}, kind, "no_projection"
    if answer["budget"]["exhausted"]:
        log.info("graph query stopped at its budget", extra={
            "query": kind, "exhausted": answer["budget"]["exhausted"],
            "nodes_visited": answer["budget"]["nodes_visited"]})
    return 200, answer, kind, "ok"


async def graph_query(request: web.Request) -> web.Response:
    """``POST /graph/query``: answer one query document."""
    started = time.monotonic()
    body = await request.read()
    with _tracer.start_as_current_span("POST /graph/query", kind=trace.SpanKind.SERVER,
                                       attributes={"fleet.query": "language"}) as span:
        try:
            status, answer, kind, outcome = await asyncio.to_thread(
                answer_query, request.app[_READER], body)
            exhausted = answer["budget"]["exhausted"] if status == 200 else None
            response = web.Response(body=_encode(answer), status=status,
                                    content_type="application/json")
        except Exception:
            log.exception("graph query failed", extra={"query": "language", "path": request.path})
            kind, outcome, exhausted = "unknown", "error", None
            response = web.json_response(
                {"error": "internal", "detail": "the query failed; the api's log has the traceback"},
                status=500)
            span.set_status(trace.Status(trace.StatusCode.ERROR, outcome))
        span.set_attribute("fleet.query.type", kind)
        span.set_attribute("fleet.query.budget", exhausted or "within")
        span.set_attribute("fleet.query.outcome", outcome)
        span.set_attribute("http.response.status_code", response.status)
    attributes = {"query": kind, "outcome": outcome}
    _requests.add(1, {**attributes, "budget": exhausted or "within"})
    _duration.record(time.monotonic() - started, attributes)
    stats = query_stats(request.app)
    if stats is not None:
        stats.served += 1
        stats.failed += outcome == "error"
    return response
