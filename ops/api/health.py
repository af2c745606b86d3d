"""``/readyz`` of the api process, and the api's own heartbeat.

``/readyz`` answers from the same judgement as ``fleet health``
(:func:`ops.health.assess`): 503 when a component holds reads back (NATS
unreachable, a worker failed, a projection more than ``FLEET_READY_MAX_LAG``
events behind or building its first version), with the same lines ``fleet
health`` prints. ``/metrics`` is :mod:`ops.api.metrics`.
"""

from __future__ import annotations

import time

from aiohttp import web

from workers.natsio.heartbeat import Heartbeat

from ..health import HealthReport, gather
from .app import context
from .queries import query_stats

__all__ = ["readiness", "report", "setup"]


def setup(app: web.Application) -> None:
    """Add ``/readyz``, and beat for the api process."""
    app.router.add_get("/readyz", readyz)
    app.cleanup_ctx.append(_heartbeat)


async def _heartbeat(app: web.Application):
    ctx = context(app)
    telemetry = ctx.telemetry
    started = time.time()

    def details() -> tuple[str, dict]:
        out: dict = {"progress_at": started, "backlog": 0}
        stats = query_stats(app)
        if stats is not None:
            out["queries"], out["queries_failed"] = stats.served, stats.failed
        return "ok", out

    # A replica host's api beats under its replica's name: the primary's "api" key stays its own.
    name = f"{ctx.settings.replica_name}-api" if ctx.settings.api_replica else "api"
    beat = Heartbeat(ctx.nc.jetstream(), name, details,
                     telemetry.snapshot if telemetry else None,
                     interval_secs=ctx.settings.heartbeat_interval_secs)
    beat.start()
    yield
    await beat.stop()


async def report(request: web.Request) -> HealthReport:
    """The fleet's health report, gathered by this process (``/readyz`` and ``/metrics`` judge it)."""
    ctx = context(request.app)
    return await gather(ctx.settings, expected=ctx.settings.expected, nc=ctx.nc)


def readiness(report: HealthReport) -> dict:
    """``/readyz``'s body for ``report`` (pure): ``problems`` make it not ready (the report's
    ``not_ready``); ``notes`` (an outdated worker, idle and holding nothing up) do not; ``healthy``
    is what ``fleet health`` says of the same report."""
    return {"ready": report.ready, "healthy": report.ok, "problems": report.not_ready,
            "notes": report.notes}


async def readyz(request: web.Request) -> web.Response:
    """``GET /readyz``: 200 when no component holds reads back (see :func:`readiness`)."""
    body = readiness(await report(request))
    return web.json_response(body, status=200 if body["ready"] else 503)

