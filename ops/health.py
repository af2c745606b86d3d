"""Fleet health: gather heartbeats, lag and backlog, then judge them.

:func:`assess` is pure (values in, report out) and holds every rule;
:func:`gather` does the I/O. States:

* ``ok`` / ``rebuilding`` (a rebuild in progress is not a failure) - healthy;
* ``failed`` - the worker's projector thread died (the worker exits non-zero);
* ``outdated`` - a worker whose code is older than the active version: idle,
  holding nothing up (the newer release's worker serves), and it says so;
* ``starting`` - alive but not yet serving;
* ``stuck`` - work is waiting (backlog or lag > 0) but the process's progress
  marker has not moved for ``stuck_after_secs``;
* ``down`` - its heartbeat is older than ``stale_after_secs``, it stopped,
  or (for NATS) it cannot be reached;
* ``never started`` - no heartbeat was ever seen.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.errors import NoKeysError, NotFoundError

from events.errors import FleetError, TransientError
from workers.natsio.client import connect
from workers.natsio.heartbeat import Beat, read_heartbeats

from .settings import Settings
from .wiring import open_log

__all__ = ["Component", "HealthReport", "assess", "gather"]

HEALTHY = {"ok", "rebuilding", "outdated"}


@dataclass(frozen=True)
class Component:
    """One line of the health report."""

    name: str
    kind: str  # process | nats | projection | consumer | log
    state: str
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.state in HEALTHY


@dataclass(frozen=True)
class HealthReport:
    """Every component's state; ``ok`` only when all are healthy."""

    components: tuple[Component, ...]
    at: float
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # process -> snapshot

    @property
    def ok(self) -> bool:
        return all(c.healthy for c in self.components)

    @property
    def culprits(self) -> list[Component]:
        return [c for c in self.components if not c.healthy]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "at": self.at, "components": [asdict(c) for c in self.components],
                "culprits": [c.name for c in self.culprits]}


def _age(now: float, then: float | None) -> str:
    return "never" if then is None else f"{now - then:.1f}s ago"


def assess(
    *,
    now: float,
    nats_ok: bool,
    nats_detail: str,
    expected: tuple[str, ...],
    beats: dict[str, Beat],
    consumer_pending: int | None,
    log_head: int | None,
    quarantine_open: int,
    stale_after_secs: float = 6.0,
    stuck_after_secs: float = 30.0,
) -> HealthReport:
    """Judge the gathered facts; every health rule lives here."""
    out: list[Component] = [
        Component("nats", "nats", "ok" if nats_ok else "down", nats_detail)
    ]
    for name in sorted(set(expected) | set(beats)):
        beat = beats.get(name)
        if beat is None:
            out.append(Component(name, "process", "never started", "no heartbeat seen"))
            continue
        data = {"last_heartbeat": beat.at, "pid": beat.pid, "host": beat.host, **beat.details}
        if beat.state == "stopped":
            out.append(Component(name, "process", "down", f"stopped {_age(now, beat.at)}", data))
            continue
        if now - beat.at > max(stale_after_secs, 3 * beat.interval_secs):
            out.append(Component(name, "process", "down",
                                 f"last heartbeat {_age(now, beat.at)} (pid {beat.pid})", data))
            continue
        state, detail = beat.state, f"heartbeat {_age(now, beat.at)}"
        if beat.details.get("rewinds"):
            detail += (f", consumer rewound {beat.details['rewinds']}x since start"
                       " (deliveries lost in flight, read again)")
        if beat.details.get("queries_failed"):
            detail += (f", {beat.details['queries_failed']} of {beat.details.get('queries')} graph"
                       " queries failed (500; the api's log has the tracebacks)")
        if beat.details.get("failure"):
            detail += f", {beat.details['failure']}"
        if beat.details.get("rolled_back"):
            detail += f", rolled back: {beat.details['rolled_back']}"
        if beat.details.get("outdated"):
            detail += f", outdated: {beat.details['outdated']}"
        changes = beat.details.get("changes")
        if isinstance(changes, dict) and changes.get("standby"):
            detail += ", change feed on standby (another process publishes it)"
        if beat.details.get("gone"):
            detail += (f", {beat.details['gone']} stream messages were gone before it read them"
                       " (stream limits or deletes)")
        if _is_stuck(now, beat.details.get("backlog"), beat.details.get("progress_at"),
                     stuck_after_secs):
            state = "stuck"
            detail = (f"backlog {beat.details.get('backlog')} but no progress since "
                      f"{_age(now, beat.details.get('progress_at'))}")
        out.append(Component(name, "process", state, detail, data))
        for projection in beat.details.get("projections", []):
            out.append(_projection(now, projection, stuck_after_secs))
    if consumer_pending is not None:
        out.append(Component("ingest consumer", "consumer", "ok", f"{consumer_pending} pending",
                             {"pending": consumer_pending}))
    out.append(Component("log", "log", "ok",
                         f"head {log_head if log_head is not None else 'none'}, "
                         f"{quarantine_open} quarantined",
                         {"head": log_head, "quarantine_open": quarantine_open}))
    return HealthReport(tuple(out), now, {name: b.metrics for name, b in beats.items()})


def _is_stuck(now: float, backlog: int | None, progress_at: float | None, stuck_after_secs: float
              ) -> bool:
    """Work is waiting but nothing moved for ``stuck_after_secs``."""
    return bool(backlog) and progress_at is not None and now - progress_at > stuck_after_secs


def _projection(now: float, p: dict[str, Any], stuck_after_secs: float) -> Component:
    version = p.get("version")
    name = f"projection {p.get('name')}" + (f" v{version}" if version is not None else "")
    lag = p.get("lag") or 0
    if p.get("checkpoint") is None:
        if not p.get("head"):
            return Component(name, "projection", "ok", "waiting for the first event", p)
        return Component(name, "projection", "never started", "no checkpoint yet", p)
    state = p.get("state", "ok")
    detail = f"position {p.get('checkpoint')}, lag {lag}"
    if p.get("fsync"):
        detail += f", fsync {p['fsync']}"
    if state != "rebuilding" and _is_stuck(now, lag, p.get("progress_at"), stuck_after_secs):
        state = "stuck"
        detail += f", no progress since {_age(now, p.get('progress_at'))}"
    return Component(name, "projection", state, detail, p)


async def gather(settings: Settings, *, expected: tuple[str, ...], nc: Client | None = None
                 ) -> HealthReport:
    """Read NATS, the heartbeats, the ingest consumer and the log; then :func:`assess`.

    ``nc`` is a connected client to reuse (the api process); without it a
    short-lived connection is made.
    """
    nats_ok, nats_detail = False, ""
    beats: dict[str, Beat] = {}
    pending: int | None = None
    own = nc is None
    if own:
        try:
            nc = await connect(settings.nats_url, name="fleet-health", connect_timeout_secs=2)
        except TransientError as e:
            nats_detail = str(e)
    if nc is not None and not nc.is_connected:
        nats_detail = f"not connected to {settings.public_nats_url} (reconnecting)"
    elif nc is not None:
        try:
            nats_ok, nats_detail = True, settings.public_nats_url
            js = nc.jetstream()
            try:
                beats = await read_heartbeats(js)
            except NoKeysError:  # the bucket is there but empty: none written yet, or all expired
                beats = {}
            try:
                info = await js.consumer_info(settings.stream, settings.ingest_durable)
                pending = info.num_pending + info.num_ack_pending
            except NotFoundError:
                pending = None
        except (NatsError, asyncio.TimeoutError) as e:
            nats_ok, nats_detail = False, f"NATS request failed: {e!r}"
        finally:
            if own:
                await nc.close()
    head, quarantined = None, 0
    try:
        with open_log(settings, readonly=True) as event_log:
            head, quarantined = event_log.head, event_log.quarantine_count()
    except FleetError:
        pass
    return assess(now=time.time(), nats_ok=nats_ok, nats_detail=nats_detail, expected=expected,
                  beats=beats, consumer_pending=pending, log_head=head, quarantine_open=quarantined,
                  stale_after_secs=settings.heartbeat_stale_secs, stuck_after_secs=settings.stuck_after_secs)
