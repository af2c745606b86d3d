"""Pages for people: the fleet's status at ``/`` and a node with its neighbours at ``/ui/nodes/{id}``.

Static files (``static/``, no build step, nothing from a CDN) that the
browser fills from JSON: ``/ui/health.json`` is the report of ``fleet health
--json`` (:func:`ops.health.gather`, the same judgement), and node pages read
the graph routes of :mod:`.queries`, their neighbours a page at a time with
its cursors. Scripts put every value in as text, never as markup; the pages
are served with a Content-Security-Policy that allows only this origin's
scripts and styles. ``/ui/search?q=`` sends an id or a path to its node page.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from opentelemetry import metrics, trace

from ..health import gather
from .app import context
from .queries import MAX_ID_CHARS

__all__ = ["STATIC", "setup"]

#: the pages, their script and their style, shipped as package data
STATIC = Path(__file__).with_name("static")
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self';"
        " base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
_tracer = trace.get_tracer(__name__)
_requests = metrics.get_meter(__name__).create_counter(
    "fleet.api.ui.requests", unit="{request}", description="Status and node page requests, by page")


def setup(app: web.Application) -> None:
    """Add ``/``, ``/ui/health.json``, ``/ui/nodes/{id}``, ``/ui/search`` and ``/ui/static/``."""
    app.router.add_get("/", status_page)
    app.router.add_get("/ui/health.json", health_json)
    app.router.add_get("/ui/nodes/{id}", node_page)
    app.router.add_get("/ui/search", search)
    app.router.add_static("/ui/static/", STATIC)
    app.on_response_prepare.append(_page_headers)


async def _page_headers(request: web.Request, response: web.StreamResponse) -> None:
    if request.path == "/" or request.path.startswith("/ui/"):
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-cache"
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["Referrer-Policy"] = "no-referrer"


def _page(name: str) -> web.FileResponse:
    _requests.add(1, {"page": name})
    return web.FileResponse(STATIC / f"{name}.html", headers={"Content-Type": "text/html; charset=utf-8"})


async def status_page(request: web.Request) -> web.StreamResponse:
    """``GET /``: the status page (its script reads ``/ui/health.json``)."""
    return _page("status")


async def node_page(request: web.Request) -> web.StreamResponse:
    """``GET /ui/nodes/{id}``: a node page (its script reads the graph routes)."""
    return _page("node")


async def health_json(request: web.Request) -> web.Response:
    """``GET /ui/health.json``: what ``fleet health --json`` prints, gathered by this process."""
    ctx = context(request.app)
    with _tracer.start_as_current_span("GET /ui/health.json", kind=trace.SpanKind.SERVER):
        started = time.monotonic()
        report = await gather(ctx.settings, expected=ctx.settings.expected, nc=ctx.nc)
        _requests.add(1, {"page": "health.json"})
        body = json.dumps(report.to_dict(), default=str)  # as `fleet health --json` encodes it
        trace.get_current_span().set_attribute("fleet.ui.gather_secs", time.monotonic() - started)
    return web.Response(text=body, content_type="application/json")


async def search(request: web.Request) -> web.Response:
    """``GET /ui/search?q=ID-OR-PATH``: redirect to that node's page (which resolves paths)."""
    ref = request.query.get("q", "").strip()
    if len(ref) > MAX_ID_CHARS:
        return web.json_response({"error": "bad_query", "detail": (
            f"q is {len(ref)} characters long, over the limit of {MAX_ID_CHARS} - node ids are "
            "type:source:id (issue:gitlab:12) or paths (gitlab:group/project#12)")}, status=400)
    raise web.HTTPFound("/ui/nodes/" + quote(ref, safe="") if ref else "/")
