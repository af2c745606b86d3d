"""``/mcp``: the graph's MCP server (:mod:`ops.mcp`) over streamable HTTP on the api's port.

An agent's MCP client points at ``http://<api host>:<port>/mcp``. The api
binds loopback by default, and on loopback only loopback ``Host``/``Origin``
headers are admitted (DNS-rebinding protection); README "MCP" says how to
expose it further.
"""

from __future__ import annotations

from aiohttp import web

from projections.read.reader import GraphReader

from ..mcp.http import McpHttp
from ..mcp.server import build_server
from .app import context

__all__ = ["setup"]

_MCP = web.AppKey("mcp_http", McpHttp)


def setup(app: web.Application) -> None:
    """Serve ``GET``, ``POST`` and ``DELETE /mcp`` with the MCP server."""
    app.router.add_route("GET", "/mcp", _handle)
    app.router.add_route("POST", "/mcp", _handle)
    app.router.add_route("DELETE", "/mcp", _handle)
    app.cleanup_ctx.append(_lifecycle)


async def _lifecycle(app: web.Application):
    settings = context(app).settings
    reader = GraphReader(settings.projections_dir)
    bridge = McpHttp(build_server(reader), host=settings.api_host, max_body_bytes=settings.max_body_bytes)
    await bridge.start()
    app[_MCP] = bridge
    try:
        yield
    finally:
        await bridge.stop()
        reader.close()


async def _handle(request: web.Request) -> web.StreamResponse:
    return await request.app[_MCP].handle(request)
