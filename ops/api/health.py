"""``/readyz`` and ``/metrics`` of the api process, and the api's own heartbeat.

``/readyz`` is fleet-wide: NATS reachable from this process, and every
projection the worker reports within ``FLEET_READY_MAX_LAG`` events of the
log head. ``/metrics`` renders, in Prometheus text format, every live
process's metric snapshot (shipped in its heartbeat, labelled with
``process``) and fleet gauges computed by the health rules.
"""

from __future__ import annotations

import time

from aiohttp import web

from workers.natsio.heartbeat import Heartbeat

from ..health import HealthReport, gather
from .app import context
from .queries import query_stats

__all__ = ["readiness", "render_metrics", "setup"]

def setup(app: web.Application) -> None:
    """Add ``/readyz`` and ``/metrics``, and beat for the api process."""
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
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

    beat = Heartbeat(ctx.nc.jetstream(), "api", details,
                     telemetry.snapshot if telemetry else None,
                     interval_secs=ctx.settings.heartbeat_interval_secs)
    beat.start()
    yield
    await beat.stop()


async def _report(request: web.Request) -> HealthReport:
    ctx = context(request.app)
    return await gather(ctx.settings, expected=ctx.settings.expected, nc=ctx.nc)


def readiness(report: HealthReport, max_lag: int) -> tuple[list[str], list[str]]:
    """``(problems, notes)`` of a fleet for ``/readyz`` (pure): problems make it not ready;
    notes (an outdated worker, idle and holding nothing up) do not."""
    problems, notes = [], []
    for c in report.components:
        if c.kind == "nats" and c.state != "ok":
            problems.append(f"nats: {c.detail}")
        if c.kind == "process" and c.state == "failed":
            problems.append(f"{c.name}: {c.data.get('failure', 'failed')}")
        if c.kind == "process" and c.state == "outdated":
            notes.append(f"{c.name}: outdated: {c.data.get('outdated')}")
        if c.kind == "projection" and c.state != "rebuilding" and (c.data.get("lag") or 0) > max_lag:
            problems.append(f"{c.name}: lag {c.data.get('lag')} over {max_lag}")
    return problems, notes


async def readyz(request: web.Request) -> web.Response:
    """``GET /readyz``: 200 when NATS is reachable, no worker failed and the active projection
    is within the lag bound; ``notes`` say what is worth knowing but holds nothing up."""
    report = await _report(request)
    problems, notes = readiness(report, context(request.app).settings.ready_max_lag)
    body = {"ready": not problems, "problems": problems, "notes": notes}
    return web.json_response(body, status=200 if not problems else 503)


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text exposition of the whole fleet."""
    report = await _report(request)
    return web.Response(text=render_metrics(report), content_type="text/plain",
                        charset="utf-8", headers={"X-Content-Type-Options": "nosniff"})


def _with_label(key: str, label: str) -> str:
    name, brace, rest = key.partition("{")
    return f"{name}{{{label},{rest}" if brace else f"{name}{{{label}}}"


def render_metrics(report: HealthReport) -> str:
    """Prometheus text format for ``report`` (pure: tested without a server)."""
    lines: list[str] = []
    for process, snapshot in sorted(report.metrics.items()):
        label = f'process="{process}"'
        for key, value in sorted(snapshot.items()):
            lines.append(f"{_with_label(key, label)} {value}")
    lines.append("# TYPE fleet_component_healthy gauge")
    for c in report.components:
        lines.append(f'fleet_component_healthy{{kind="{c.kind}",name="{c.name}",state="{c.state}"}} '
                     f"{int(c.healthy)}")
        if c.kind == "process" and "last_heartbeat" in c.data:
            lines.append(f'fleet_heartbeat_age_seconds{{process="{c.name}"}} '
                         f"{report.at - c.data['last_heartbeat']:.3f}")
        if c.kind == "projection":
            lines.append(f'fleet_projection_lag{{projection="{c.name}"}} {c.data.get("lag") or 0}')
        if c.kind == "consumer":
            lines.append(f"fleet_ingest_consumer_pending {c.data['pending']}")
        if c.kind == "log":
            lines.append(f"fleet_log_head {c.data['head'] or 0}")
            lines.append(f"fleet_quarantine_open {c.data['quarantine_open']}")
    lines.append(f"fleet_healthy {int(report.ok)}")
    return "\n".join(lines) + "\n"
