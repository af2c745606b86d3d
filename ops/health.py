"""Fleet health: gather heartbeats, lag and backlog, then judge them.

:func:`assess` is pure (values in, report out) and holds every rule;
:func:`gather` does the I/O. States:

* ``ok`` / ``rebuilding`` (a rebuild in progress is not a failure) - healthy;
* ``catching up`` - a projection more than ``ready_max_lag`` events behind (or
  building the first version) and moving: healthy but *not ready*;
* ``failed`` - the worker's projector thread died (the worker exits non-zero);
* ``outdated`` - a worker whose code is older than the active version: idle,
  holding nothing up (the newer release's worker serves), and it says so;
* ``starting`` - alive but not yet serving;
* ``stuck`` - work is waiting (backlog or lag > 0) but the process's progress
  marker has not moved for ``stuck_after_secs``;
* ``down`` - its heartbeat is older than ``stale_after_secs``, it stopped,
  or (for NATS) it cannot be reached;
* ``never started`` - no heartbeat was ever seen.

Readiness is judged in the same pass: a component that holds reads back
(NATS unreachable, a failed worker, a projection over the lag bound or with no
version built yet) carries the reason in ``not_ready``; ``fleet health``'s exit
code follows :attr:`HealthReport.ok`, ``/readyz`` follows
:attr:`HealthReport.ready`, and both print the same lines.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.errors import NoKeysError, NotFoundError

from events.errors import FleetError, TransientError
from workers.natsio.client import connect
from workers.natsio.cluster import Member, cluster_members
from workers.natsio.heartbeat import Beat, MetricFamily, read_heartbeats
from workers.projector.progress import catch_up_line

from .settings import Settings
from .wiring import open_log

__all__ = ["Component", "HealthReport", "assess", "gather"]

HEALTHY = {"ok", "rebuilding", "outdated", "catching up"}


@dataclass(frozen=True)
class Component:
    """One line of the health report."""

    name: str
    kind: str  # process | nats | projection | consumer | log
    state: str
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    #: why it holds reads back (``/readyz`` 503), e.g. ``projection graph v3: catching up: ...``
    not_ready: str = ""

    @property
    def healthy(self) -> bool:
        return self.state in HEALTHY

    @property
    def ready(self) -> bool:
        return not self.not_ready


@dataclass(frozen=True)
class HealthReport:
    """Every component's state; ``ok`` only when all are healthy, ``ready`` when none holds reads back."""

    components: tuple[Component, ...]
    at: float
    metrics: dict[str, list[MetricFamily]] = field(default_factory=dict)  # process -> its metrics

    @property
    def ok(self) -> bool:
        return all(c.healthy for c in self.components)

    @property
    def ready(self) -> bool:
        return all(c.ready for c in self.components)

    @property
    def not_ready(self) -> list[str]:
        """Why ``/readyz`` answers 503 (empty when ready)."""
        return [c.not_ready for c in self.components if c.not_ready]

    @property
    def notes(self) -> list[str]:
        """Worth knowing, holding nothing up: outdated workers."""
        return [f"{c.name}: outdated: {c.data.get('outdated')}" for c in self.components
                if c.kind == "process" and c.state == "outdated"]

    @property
    def culprits(self) -> list[Component]:
        return [c for c in self.components if not c.healthy]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "at": self.at,
                "components": [asdict(c) | {"healthy": c.healthy, "ready": c.ready}
                               for c in self.components],
                "culprits": [c.name for c in self.culprits],
                "ready": self.ready, "not_ready": self.not_ready, "notes": self.notes}


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
    ready_max_lag: int = 10_000,
    cluster: tuple[Member, ...] | list[Member] = (),
    supervised: dict[str, dict[str, Any]] | None = None,
) -> HealthReport:
    """Judge the gathered facts; every health rule lives here.

    ``supervised``: the running ``fleet up``'s processes (:func:`ops.supervise.read_state`).
    """
    out: list[Component] = [
        Component("nats", "nats", "ok" if nats_ok else "down", nats_detail,
                  not_ready="" if nats_ok else f"nats: {nats_detail}")
    ]
    # A lost cluster member is named even while a quorum keeps the fleet working.
    out.extend(Component(f"nats server {m.name}", "nats", "ok" if m.up else "down", m.detail)
               for m in cluster)
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
        failed = f"{name}: {beat.details.get('failure', 'failed')}" if state == "failed" else ""
        out.append(Component(name, "process", state, detail, data, not_ready=failed))
        for projection in beat.details.get("projections", []):
            out.append(_projection(now, projection, stuck_after_secs, ready_max_lag))
        if isinstance(beat.details.get("replica"), dict):
            out.append(_replica(now, name, beat.details["replica"], stuck_after_secs, ready_max_lag))
        if isinstance(beat.details.get("shipping"), dict):
            out.append(_shipping(now, beat.details["shipping"], stuck_after_secs))
    if consumer_pending is not None:
        out.append(Component("ingest consumer", "consumer", "ok", f"{consumer_pending} pending",
                             {"pending": consumer_pending}))
    out.append(Component("log", "log", "ok",
                         f"head {log_head if log_head is not None else 'none'}, "
                         f"{quarantine_open} quarantined",
                         {"head": log_head, "quarantine_open": quarantine_open}))
    out = [_supervision(c, (supervised or {}).get(c.name), now) for c in out]
    return HealthReport(tuple(out), now, {name: b.families for name, b in beats.items()})


def _is_stuck(now: float, backlog: int | None, progress_at: float | None, stuck_after_secs: float
              ) -> bool:
    """Work is waiting but nothing moved for ``stuck_after_secs``."""
    return bool(backlog) and progress_at is not None and now - progress_at > stuck_after_secs


def _replica(now: float, process: str, r: dict[str, Any], stuck_after_secs: float, ready_max_lag: int
             ) -> Component:
    """A replica's log against the primary's shipped head (README "Beyond one machine")."""
    name = f"replica {process} log"
    lag = r.get("lag") or 0
    detail = f"position {r.get('position')}, primary {r.get('primary')}, lag {lag} to the primary"
    if _is_stuck(now, lag, r.get("progress_at"), stuck_after_secs):
        return Component(name, "replica", "stuck",
                         detail + f", no progress since {_age(now, r.get('progress_at'))}", r,
                         not_ready=f"{name}: stuck {lag} behind the primary")
    over = lag > ready_max_lag
    return Component(name, "replica", "catching up" if over else "ok", detail, r,
                     not_ready=f"{name}: lag {lag} to the primary over {ready_max_lag}" if over else "")


def _shipping(now: float, s: dict[str, Any], stuck_after_secs: float) -> Component:
    """The writer's shipping to the LOG stream."""
    lag = s.get("lag") or 0
    detail = f"shipped {s.get('shipped')} of the log's {s.get('head')}, lag {lag}"
    if _is_stuck(now, lag, s.get("progress_at"), stuck_after_secs):
        return Component("log shipping", "shipping", "stuck",
                         detail + f", no progress since {_age(now, s.get('progress_at'))}", s)
    return Component("log shipping", "shipping", "ok", detail, s)


def _projection(now: float, p: dict[str, Any], stuck_after_secs: float, ready_max_lag: int
                ) -> Component:
    """One projection version's line: its state, and whether it holds reads back."""
    version = p.get("version")
    name = f"projection {p.get('name')}" + (f" v{version}" if version is not None else "")
    lag = p.get("lag") or 0
    rate = float(p.get("events_per_sec") or 0.0)
    if p.get("state") == "rebuilding":
        line = catch_up_line(lag, rate)
        if p.get("first_build"):  # nothing active yet: queries wait for this version
            return Component(name, "projection", "catching up", f"first build: {line}", p,
                             not_ready=f"{name}: first build: {line}")
        # Beside the active version, which serves reads meanwhile.
        return Component(name, "projection", "rebuilding",
                         f"position {p.get('checkpoint')}, {line.replace('catching up: ', '')}", p)
    if p.get("checkpoint") is None:
        if not p.get("head"):
            return Component(name, "projection", "ok", "waiting for the first event", p)
        lag = lag or p["head"]
        return Component(name, "projection", "never started", f"no checkpoint yet, lag {lag:,}", p,
                         not_ready=f"{name}: no version built yet, lag {lag:,}")
    state = p.get("state", "ok")
    over = lag > ready_max_lag
    detail = f"position {p.get('checkpoint')}, " + (catch_up_line(lag, rate) if over else f"lag {lag}")
    if p.get("fsync"):
        detail += f", fsync {p['fsync']}"
    if _is_stuck(now, lag, p.get("progress_at"), stuck_after_secs):
        state = "stuck"
        detail += f", no progress since {_age(now, p.get('progress_at'))}"
    elif over:
        state = "catching up"
    not_ready = f"{name}: lag {lag} over {ready_max_lag}" if over else ""
    if over and state == "catching up":
        not_ready = f"{name}: {catch_up_line(lag, rate)} (ready within {ready_max_lag:,})"
    return Component(name, "projection", state, detail, p, not_ready=not_ready)


async def gather(settings: Settings, *, expected: tuple[str, ...], nc: Client | None = None
                 ) -> HealthReport:
    """Read NATS, the heartbeats, the ingest consumer and the log; then :func:`assess`.

    ``nc`` is a connected client to reuse (the api process); without it a
    short-lived connection is made.
    """
    nats_ok, nats_detail = False, ""
    beats: dict[str, Beat] = {}
    pending: int | None = None
    members: list[Member] = []
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
            if settings.api_replica:  # a replica's api answers for this host's replica alone
                beats = {k: b for k, b in beats.items() if k in settings.expected}
            try:
                info = await js.consumer_info(settings.stream, settings.ingest_durable)
                pending = info.num_pending + info.num_ack_pending
            except NotFoundError:
                pending = None
            members = await cluster_members(js, settings.nats_url, stream=settings.stream,
                                            lost_after_secs=settings.heartbeat_stale_secs)
        except (NatsError, asyncio.TimeoutError) as e:
            nats_ok, nats_detail = False, f"NATS request failed: {e!r}"
        finally:
            if own:
                await nc.close()
    if not nats_ok and not members:
        members = await cluster_members(None, settings.nats_url, stream=settings.stream,
                                        lost_after_secs=settings.heartbeat_stale_secs)
    head, quarantined = None, 0
    try:
        with open_log(settings, readonly=True) as event_log:
            head, quarantined = event_log.head, event_log.quarantine_count()
    except FleetError:
        pass
    return assess(now=time.time(), nats_ok=nats_ok, nats_detail=nats_detail, expected=expected,
                  beats=beats, consumer_pending=pending, log_head=head, quarantine_open=quarantined,
                  stale_after_secs=settings.heartbeat_stale_secs, stuck_after_secs=settings.stuck_after_secs,
                  ready_max_lag=settings.ready_max_lag, cluster=members,
                  supervised=_supervised(settings))


def _supervised(settings: Settings) -> dict[str, dict[str, Any]]:
    """The processes of the `fleet up` running on this data dir (none without one)."""
    from .supervise import read_state

    state = read_state(settings.data_dir)
    if state is None or not state["supervisor"].get("running"):
        return {}
    return state.get("processes", {})


def _supervision(c: Component, info: dict[str, Any] | None, now: float) -> Component:
    """A process line with what `fleet up` did to it: restarts, last exit, back-off."""
    if info is None or c.kind not in ("process", "nats"):
        return c
    notes = []
    if info.get("restarts"):
        exit_code, at = info.get("last_exit"), info.get("last_exit_at")
        last = "" if exit_code is None else f", last exit {exit_code} {_age(now, at)}"
        notes.append(f"restarted {info['restarts']}x by fleet up{last}")
    if info.get("state") == "backoff" and info.get("next_start_at"):
        notes.append(f"fleet up starts it again in {max(0.0, info['next_start_at'] - now):.0f}s")
    if info.get("kills"):
        notes.append(f"needed SIGKILL {info['kills']}x")
    detail = ", ".join(([c.detail] if c.detail else []) + notes)
    return replace(c, detail=detail, data={**c.data, "supervisor": info})
