"""The MCP server over streamable HTTP inside the aiohttp api, on the api's own port.

The SDK's streamable HTTP transport is an ASGI application driven by its
:class:`StreamableHTTPSessionManager`. :class:`McpHttp` runs that manager in
a task of the api's event loop and hands it each aiohttp request as an ASGI
call: the body as one ``http.request`` message, the answer written back as it
is sent (JSON or an event stream alike). Serving it here rather than on a
port of its own keeps one address, one middleware stack (JSON errors, body
size limit) and one lifecycle for the api.

The manager runs stateless with JSON answers: every request stands alone, so
any api process can answer any request and no session outlives a restart
(the tools are read-only queries; nothing needs a server-sent stream). On a
loopback address, the SDK's DNS-rebinding protection admits only loopback
``Host`` and ``Origin`` headers.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from aiohttp import web
from mcp.server.lowlevel import Server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

__all__ = ["McpHttp"]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class McpHttp:
    """An MCP server served over streamable HTTP by aiohttp handlers (:meth:`handle`)."""

    def __init__(self, server: Server, *, host: str, max_body_bytes: int) -> None:
        security = None
        if _loopback(host):
            security = TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
                allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"])
        self.manager = StreamableHTTPSessionManager(
            app=server, stateless=True, json_response=True, security_settings=security,
            max_request_body_size=max_body_bytes)
        self._asgi = StreamableHTTPASGIApp(self.manager)
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Start the session manager (its task group lives in a task of its own)."""
        ready = asyncio.Event()

        async def hold() -> None:
            async with self.manager.run():
                ready.set()
                await self._stop.wait()

        self._task = asyncio.create_task(hold(), name="mcp-http")
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({self._task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.is_set():
            waiting.cancel()
            await self._task  # raises what stopped it

    async def stop(self) -> None:
        """Stop the session manager; requests still in flight are cancelled."""
        self._stop.set()
        if self._task is not None:
            await self._task

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one HTTP request of the MCP transport (``GET``, ``POST`` or ``DELETE /mcp``)."""
        body = await request.read()
        finished = asyncio.Event()
        delivered = False
        response: web.StreamResponse | None = None

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await finished.wait()  # the request has no more body: the next event is the end
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal response
            if message["type"] == "http.response.start":
                response = web.StreamResponse(status=message["status"])
                for name, value in message.get("headers", ()):
                    response.headers.add(name.decode("latin-1"), value.decode("latin-1"))
                await response.prepare(request)
            elif message["type"] == "http.response.body" and response is not None:
                if message.get("body"):
                    await response.write(message["body"])
                if not message.get("more_body", False):
                    await response.write_eof()

        try:
            await self._asgi(_scope(request), receive, send)
        finally:
            finished.set()
        if response is None:
            raise web.HTTPInternalServerError(text="the MCP transport sent no response")
        return response


def _scope(request: web.Request) -> dict[str, Any]:
    """The ASGI scope of an aiohttp request."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    host, port = (request.url.host or "127.0.0.1", request.url.port or 80)
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method, "scheme": request.scheme, "path": request.path,
        "raw_path": request.raw_path.split("?", 1)[0].encode(), "root_path": "",
        "query_string": request.query_string.encode(),
        "headers": [(k.lower(), v) for k, v in request.raw_headers],
        "client": tuple(peer[:2]) if peer else None, "server": (host, port),
    }
