"""The ``api`` process: one aiohttp application assembled from route modules.

Route modules plug in the way CLI commands do. Every module of this package
whose name does not start with ``_`` (``hooks``, ``health``, ``queries`` ...;
``app`` itself excepted) defines ``setup(app)`` and adds its routes,
middlewares and start-up hooks there; :func:`create_app` calls them in name
order, after the shared resources are in place. A route module reads those
resources through :func:`context`::

    def setup(app: web.Application) -> None:
        app.router.add_get("/readyz", readyz)

    async def readyz(request: web.Request) -> web.Response:
        ctx = context(request.app)      # settings, NATS client, event sink
        ...

The NATS connection and the SDLC stream are set up on start-up (the first
cleanup context, so every later start-up hook sees them) and drained on
clean-up, after the server stopped accepting requests and the ones in flight
finished. Every error is JSON ``{"error", "detail"}``: the :func:`json_errors`
middleware turns aiohttp's own (no such route, method not allowed) and any
exception a route let through into that shape.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence

import nats.errors
from aiohttp import web
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NoStreamResponseError
from opentelemetry import metrics

from events.codec import encode_event
from events.errors import ConfigError
from events.types import Event, subject_for
from workers.natsio.client import connect
from workers.natsio.publish import PublishReport
from workers.natsio.streams import ensure_stream

from ..settings import Settings
from ..telemetry import Telemetry
from ..wiring import sdlc_stream

__all__ = ["ApiContext", "EventSink", "Setup", "context", "create_app", "json_errors",
           "route_setups", "run_api", "serve_api"]

log = logging.getLogger(__name__)
_failures = metrics.get_meter(__name__).create_counter(
    "fleet.api.failures", unit="{request}",
    description="Requests answered 500 because a route raised, by route and method")

#: A route module's entry point: adds routes (and hooks) to the application.
Setup = Callable[[web.Application], None]

#: How long a request waits for JetStream's ack (platforms time out at ~10 s).
ACK_TIMEOUT_SECS = 5.0

#: How long a stopping server waits for requests in flight.
SHUTDOWN_TIMEOUT_SECS = 15.0


class EventSink:
    """Publishes one request's canonical events and reports exactly their acks.

    Each event goes out with ``Nats-Msg-Id`` = its id, all of a request's
    events in flight at once. The fleet's pipelined
    :class:`~workers.natsio.publish.Publisher` keeps one report and one drain point
    per publisher, so concurrent requests sharing it could not tell their
    own acks from their neighbours'; here every request gets its own report.
    """

    def __init__(self, js: JetStreamContext, *, stream: str, prefix: str,
                 ack_timeout_secs: float = ACK_TIMEOUT_SECS) -> None:
        self._js = js
        self._stream = stream
        self._prefix = prefix
        self._ack_timeout = ack_timeout_secs

    async def publish(self, events: Sequence[Event], *,
                      headers: Mapping[str, str] | None = None) -> PublishReport:
        """Publish ``events``; return once JetStream answered for every one."""
        results = await asyncio.gather(*(self._one(e, headers) for e in events),
                                       return_exceptions=True)
        report = PublishReport()
        for event, result in zip(events, results):
            if isinstance(result, BaseException):
                report.errors.append(f"event {event.event_id}: {self._describe(result)}")
            elif result.duplicate:
                report.duplicates += 1
            else:
                report.published += 1
        return report

    async def _one(self, event: Event, headers: Mapping[str, str] | None) -> PubAck:
        return await self._js.publish(
            subject_for(event, self._prefix), encode_event(event), timeout=self._ack_timeout,
            stream=self._stream, headers={**(headers or {}), "Nats-Msg-Id": event.event_id})

    def _describe(self, error: BaseException) -> str:
        if isinstance(error, NoStreamResponseError):
            return f"no JetStream stream takes subjects {self._prefix}.> (is {self._stream} there?)"
        if isinstance(error, (nats.errors.TimeoutError, asyncio.TimeoutError)):
            return f"JetStream did not acknowledge within {self._ack_timeout:g}s"
        return f"{type(error).__name__}: {error}"


@dataclass
class ApiContext:
    """What route handlers share: settings, and once started, NATS and the sink."""

    settings: Settings
    nc: Client | None = None
    sink: EventSink | None = None
    telemetry: Telemetry | None = None


_CONTEXT = web.AppKey("graphfleet", ApiContext)


def context(app: web.Application) -> ApiContext:
    """The shared resources of the api application ``app``."""
    return app[_CONTEXT]


def route_setups() -> list[Setup]:
    """``setup`` of every route module in this package, in module-name order."""
    package = importlib.import_module(__package__)
    names = sorted(m.name for m in pkgutil.iter_modules(package.__path__)
                   if not m.name.startswith("_") and m.name != "app")
    return [importlib.import_module(f"{__package__}.{name}").setup for name in names]


def create_app(settings: Settings, *, nc: Client | None = None,
               setups: Iterable[Setup] | None = None,
               telemetry: Telemetry | None = None) -> web.Application:
    """The api application: ``/healthz`` plus every route module's routes.

    ``nc`` is an already connected client (left open on clean-up); without
    it the app connects to ``settings.nats_url`` on start-up and drains the
    connection on clean-up. ``setups`` replaces the discovered route modules
    (tests mount one module alone).
    """
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[json_errors])
    app[_CONTEXT] = ApiContext(settings=settings, telemetry=telemetry)
    app.cleanup_ctx.append(_nats_lifecycle(nc))
    app.router.add_get("/healthz", healthz)
    for setup in route_setups() if setups is None else setups:
        setup(app)
    return app


def _nats_lifecycle(given: Client | None) -> Callable[[web.Application], AsyncIterator[None]]:
    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        ctx = context(app)
        settings = ctx.settings
        nc = given or await connect(settings.nats_url, name="fleet-api", wait_for_server_secs=30)
        try:
            await ensure_stream(nc.jetstream(), sdlc_stream(settings))
            ctx.nc = nc
            ctx.sink = EventSink(nc.jetstream(), stream=settings.stream,
                                 prefix=settings.subject_prefix)
            yield
        finally:
            ctx.sink = None
            if given is None and not nc.is_closed:
                await nc.drain()
                log.info("nats drained", extra={"client": "fleet-api"})

    return lifecycle


@web.middleware
async def json_errors(request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
    """Answer every error as JSON ``{"error", "detail"}``.

    aiohttp's own 4xx (no such route, method not allowed) keep their status
    and headers; an exception a route let through is a 500 ``internal``,
    logged with its traceback and counted in ``fleet.api.failures``. Routes
    answer the errors they expect themselves (and count them in their metrics).
    """
    try:
        return await handler(request)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return _http_error(request, e)
    except Exception:
        route = _route(request)
        log.exception("request failed", extra={"method": request.method, "path": request.path,
                                                "route": route})
        _failures.add(1, {"route": route, "method": request.method})
        return web.json_response(
            {"error": "internal",
             "detail": f"{request.method} {route} failed; the api's log has the traceback"},
            status=500)


def _route(request: web.Request) -> str:
    """The route template a request matched (``/graph/nodes/{id}``): few values, for metrics."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


def _http_error(request: web.Request, error: web.HTTPException) -> web.Response:
    path = request.path if len(request.path) <= 200 else f"{request.path[:200]}..."
    served = sorted({f"{r.method} {r.resource.canonical}" for r in request.app.router.routes()
                     if r.resource is not None and r.method != "HEAD"})
    if isinstance(error, web.HTTPNotFound):
        code, detail = "not_found", f"no route {request.method} {path} - the api serves " + ", ".join(served)
    elif isinstance(error, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(error.allowed_methods - {"HEAD"}))
        code, detail = "method_not_allowed", f"{request.method} {path} is not served - use {allowed}"
    else:
        code = error.reason.lower().replace(" ", "_")
        detail = f"{request.method} {path}: {error.text or error.reason}"
    headers = {k: v for k, v in error.headers.items() if k not in ("Content-Type", "Content-Length")}
    return web.json_response({"error": code, "detail": detail}, status=error.status, headers=headers)


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: the process is alive (no I/O, always 200)."""
    return web.json_response({"status": "ok"})


async def serve_api(settings: Settings, stop: asyncio.Event, *, nc: Client | None = None,
                    setups: Iterable[Setup] | None = None,
                    telemetry: Telemetry | None = None) -> None:
    """Serve the api on ``settings.api_host:api_port`` until ``stop`` is set, then shut down.

    Shutdown stops accepting connections, lets requests in flight finish
    (up to ``SHUTDOWN_TIMEOUT_SECS``), then drains NATS.
    """
    app = create_app(settings, nc=nc, setups=setups, telemetry=telemetry)
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           shutdown_timeout=SHUTDOWN_TIMEOUT_SECS)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.api_host, settings.api_port, reuse_address=True)
        try:
            await site.start()
        except OSError as e:
            raise ConfigError(
                f"cannot listen on {settings.api_host}:{settings.api_port}: {e.strerror or e} "
                "- set FLEET_API_HOST / FLEET_API_PORT (or --host / --port) to a free address"
            ) from e
        log.info("api listening", extra={"addresses": [str(a) for a in runner.addresses]})
        await stop.wait()
        log.info("api stopping")
    finally:
        await runner.cleanup()
    log.info("api stopped")


def run_api(settings: Settings, *, telemetry: Telemetry | None = None) -> None:
    """Run the api process until SIGTERM or SIGINT (the Procfile's ``api``)."""
    from ..runner import run_until_signal

    run_until_signal(lambda stop: serve_api(settings, stop, telemetry=telemetry))
