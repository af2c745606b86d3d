"""Graph queries over HTTP (JSON), answered from the active projection version.

========================================  =============================================
``GET /graph/counts``                     nodes and edges per type, version, position
``GET /graph/nodes/{id}``                 a node with its properties
``GET /graph/nodes/{id}/neighbors``       ``?edge=HAS_LABEL&direction=out&limit=100``
``GET /graph/nodes/{id}/hops``            ``?depth=3&max_nodes=1000&edge=...``
``GET /graph/path``                       ``?from=ID&to=ID&max_depth=6&max_nodes=1000000&edge=...``
``GET /graph/types/{type}``               ``?<prop>=<value>&limit=50&after=ID&source=gitlab``
========================================  =============================================

A path answer has ``length`` null when none was found; ``truncated`` true
then means the search gave up at ``max_nodes`` visited nodes (a path may
still exist), false that there is no path of at most ``max_depth`` edges.

Ids are the graph's text ids (``issue:gitlab:12``) or the resolvable paths the
CLI accepts (``gitlab:group/project#12``). Errors are JSON
``{"error", "detail"}``: 404 unknown node, 400 bad parameter, 503 no active
version yet. LMDB reads are fast and release the GIL, but queries run in a
thread so a deep traversal never stalls the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import msgspec
from aiohttp import web

from events.errors import NotFound
from projections.errors import ProjectionError, QueryError, UnknownNode
from projections.query import PATH_MAX_NODES, GraphReader

from .app import context

__all__ = ["setup"]

_READER = web.AppKey("graph_reader", GraphReader)
_encode = msgspec.json.Encoder().encode
_RESERVED = {"limit", "after", "source"}


def setup(app: web.Application) -> None:
    """Add the /graph routes and a reader opened lazily on the projections dir."""
    app.router.add_get("/graph/counts", counts)
    app.router.add_get("/graph/nodes/{id}", node)
    app.router.add_get("/graph/nodes/{id}/neighbors", neighbors)
    app.router.add_get("/graph/nodes/{id}/hops", hops)
    app.router.add_get("/graph/path", path)
    app.router.add_get("/graph/types/{type}", find)
    app.cleanup_ctx.append(_reader)


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
        raise QueryError(f"{name}={raw!r} is not an integer") from None
    if not low <= value <= high:
        raise QueryError(f"{name}={value} is out of range {low}..{high}")
    return value


async def _answer(request: web.Request, query: Callable[[GraphReader], Any]) -> web.Response:
    reader = request.app[_READER]
    try:
        result = await asyncio.to_thread(query, reader)
    except UnknownNode as e:
        return web.json_response({"error": "unknown_node", "detail": str(e)}, status=404)
    except QueryError as e:
        return web.json_response({"error": "bad_query", "detail": str(e)}, status=400)
    except (NotFound, ProjectionError) as e:
        return web.json_response({"error": "no_projection", "detail": str(e)}, status=503)
    if hasattr(result, "as_dict"):
        result = result.as_dict()
    # msgspec: node properties hold datetimes, which the stdlib encoder refuses
    return web.Response(body=_encode(result), content_type="application/json")


async def counts(request: web.Request) -> web.Response:
    return await _answer(request, lambda r: r.counts())


async def node(request: web.Request) -> web.Response:
    return await _answer(request, lambda r: r.node(request.match_info["id"]))


async def neighbors(request: web.Request) -> web.Response:
    q = request.query
    return await _answer(request, lambda r: {"neighbors": [n.as_dict() for n in r.neighbors(
        request.match_info["id"], edges=q.getall("edge", None), direction=q.get("direction", "both"),
        limit=_int(request, "limit", 100), with_props=True)]})


async def hops(request: web.Request) -> web.Response:
    q = request.query
    return await _answer(request, lambda r: r.hops(
        request.match_info["id"], _int(request, "depth", 2, high=10), edges=q.getall("edge", None),
        direction=q.get("direction", "both"), max_nodes=_int(request, "max_nodes", 1000)))


async def path(request: web.Request) -> web.Response:
    def query(r: GraphReader):
        src, dst = request.query.get("from"), request.query.get("to")
        if not src or not dst:
            raise QueryError("give both ?from=ID&to=ID")
        return r.path(src, dst, edges=request.query.getall("edge", None),
                      directed=request.query.get("directed", "false").lower() == "true",
                      max_depth=_int(request, "max_depth", 6, high=12),
                      max_nodes=_int(request, "max_nodes", PATH_MAX_NODES, high=10 * PATH_MAX_NODES))

    return await _answer(request, query)


async def find(request: web.Request) -> web.Response:
    q = request.query
    filters = {k: _value(v) for k, v in q.items() if k not in _RESERVED}
    return await _answer(request, lambda r: r.find(
        request.match_info["type"], filters, source=q.get("source"),
        limit=_int(request, "limit", 50, high=1000), after=q.get("after")))


def _value(raw: str) -> Any:
    """Query-string values: integers and true/false/null as JSON would have them."""
    if raw.lstrip("-").isdigit():
        return int(raw)
    return {"true": True, "false": False, "null": None}.get(raw, raw)
