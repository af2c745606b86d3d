"""What the ``worker`` process's actors run on: the projector and the change publisher.

:class:`WorkerRuntime` owns one :class:`~workers.projector.loop.Projector`, run
by a thread of its own (``worker-projector``), and an asyncio loop thread
(``worker-nats``) for the NATS side: the change publisher's loop, the
heartbeat and the log notifications. The live path never goes through the
broker, since a wake-up needs no durability (the log and the outbox are the
durable state, and both loops poll):

* the ingest worker publishes ``fleet.log.appended`` (core NATS) after each
  commit: the projector wakes and applies everything pending;
* after each batch that wrote change records, the projector wakes the
  publisher in-process (its ``on_commit`` hook);
* both also poll: the projector the log head every ``poll_interval_secs``,
  the publisher the outboxes every ``ChangesConfig.poll_interval_ms``.

The broker carries what is worth a durable message: ``graph.rebuild``, sent
when the projector finds that the code's version must be built. The
``graph.apply`` and ``graph.publish_changes`` actors wake the two loops, so
any process can nudge the worker through the broker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from events.errors import FleetError
from events.log import EventLog
from projections.errors import StoreBusy, VersionStateError
from projections.fold.applier import BatchResult
from projections.read.reader import GraphReader
from projections.store.env import sync_mode
from projections.versions.rebuild import RebuildProgress
from workers.natsio.client import LOG_APPENDED_SUBJECT, connect
from workers.natsio.heartbeat import Heartbeat
from workers.projector.loop import Projector, ProjectorConfig
from workers.projector.progress import RateWindow, catch_up_line, eta_secs
from workers.projector.telemetry import run_rebuild

__all__ = ["RuntimeConfig", "WorkerRuntime"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RuntimeConfig:
    """Where the worker's parts live and how often it looks."""

    log_path: Path
    projections_dir: Path
    nats_url: str
    projector: ProjectorConfig = ProjectorConfig()
    poll_interval_secs: float = 0.2  # the projector's log poll (its config's own is replaced)
    heartbeat_interval_secs: float = 2.0
    #: the heartbeat's key (the Procfile's process name): two releases of the worker run beside
    #: each other under two names during a deploy
    process_name: str = "worker"


@dataclass
class _Wakes:
    """How the live loops were woken (health details)."""

    notified: int = 0  # fleet.log.appended or graph.apply
    commits: int = 0  # projector batches that woke the publisher


class WorkerRuntime:
    """Projector + change publisher + heartbeat for one worker process."""

    def __init__(self, config: RuntimeConfig, *, metrics: Callable[[], dict] | None = None,
                 publisher_factory: Callable[[Any], Any] | None = None,
                 on_failure: Callable[[], None] | None = None) -> None:
        """``on_failure`` runs when the projector thread dies (the process: stop itself)."""
        self.config = config
        projector_config = replace(config.projector,
                                   poll_interval_ms=round(config.poll_interval_secs * 1000))
        self.projector = Projector(config.log_path, config.projections_dir, projector_config,
                                   on_commit=self._on_commit, request_rebuild=self._request_rebuild)
        self._rebuilding: set[int] = set()
        self._metrics = metrics
        self._publisher_factory = publisher_factory
        self.publisher: Any = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="worker-nats", daemon=True)
        self._stop = threading.Event()
        self._projector_thread = threading.Thread(target=self._serve_projector,
                                                  name="worker-projector", daemon=True)
        self._on_failure = on_failure
        #: why the projector thread died (None while it runs or after a clean stop)
        self.failure: str | None = None
        self._publisher_stop: asyncio.Event | None = None
        self._publisher_task: asyncio.Task | None = None
        self._nc = None
        self._heartbeat: Heartbeat | None = None
        self._wakes = _Wakes()
        self.actors = None  # set by the process after declare_actors()
        self._progress_at = time.time()
        #: positions the written version reached (its apply rate); a running rebuild's progress
        self._rate = RateWindow()
        self._rebuild_progress: dict[int, tuple[RebuildProgress, RateWindow]] = {}

    # -- what the actors and the hooks call --------------------------------------

    def apply(self) -> None:
        """Have the projector apply what is pending now (thread-safe: wakes its thread)."""
        self._wakes.notified += 1
        self.projector.notify()

    def publish(self) -> None:
        """Have the change publisher drain the outboxes now (thread-safe: wakes its loop)."""
        if self.publisher is not None:
            self.publisher.notify()

    def rebuild(self, version: int) -> None:
        """Build ``version`` from the log, resumably, and promote it.

        Only this code's version: a task for another one (redelivered from a
        worker of another release) is settled without effect.
        """
        if version != self.projector.version:
            log.warning("rebuild task for another code version settled without effect",
                        extra={"version": version, "code_version": self.projector.version})
            return
        self._rebuilding.add(version)
        try:
            result = run_rebuild(self.config.log_path, self.config.projections_dir,
                                 version=version, progress=self._on_rebuild_progress,
                                 budget_bytes=self.config.projector.rebuild_budget_bytes,
                                 map_size=self.config.projector.map_size, emit_diff=True,
                                 diff_max=self.config.projector.diff_max, stop=self._stop)
            if result.interrupted:  # the process stops; its next start resumes from here
                log.info("rebuild paused by the stop", extra=result.as_dict())
            else:
                log.info("rebuild done", extra=result.as_dict())
        except VersionStateError as e:  # a newer version is active: nothing to retry
            log.warning("rebuild task settled without effect", extra={"version": version,
                                                                     "reason": str(e)})
        except StoreBusy as e:  # an operator's `fleet replay` (or another worker) builds it now
            log.info("rebuild already running elsewhere; the projector asks again later", extra={
                "version": version, "reason": str(e)})
        except FleetError as e:
            self.projector.stats.rebuild_error = str(e)
            log.error("rebuild failed", extra={"version": version, "error": str(e)})
            raise
        finally:
            self._rebuilding.discard(version)
            self._rebuild_progress.pop(version, None)
            self.projector.notify()  # promoted: the projector takes the new version over now

    def _on_rebuild_progress(self, p: RebuildProgress) -> None:
        """A rebuild reports where it is: kept for the heartbeat (rate over a recent window)."""
        self._progress_at = time.time()
        _, window = self._rebuild_progress.get(p.version, (None, None))
        if window is None:
            window = RateWindow()
            window.add(time.monotonic() - p.elapsed_secs, p.resumed_from)
        window.add(time.monotonic(), p.position)
        self._rebuild_progress[p.version] = (p, window)

    def _on_commit(self, result: BatchResult) -> None:
        """The projector committed a batch: wake the publisher in-process if it wrote changes."""
        self._progress_at = time.time()
        self._rate.add(time.monotonic(), result.checkpoint)
        if result.outbox:
            self._wakes.commits += 1
            self.publish()

    def _request_rebuild(self, version: int) -> None:
        # No rebuild before the log exists: there would be nothing to build from.
        if self.actors is not None and self.config.log_path.exists():
            self.actors.request_rebuild(version)

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Connect to NATS; start the heartbeat, the publisher, the log listener and the projector."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start_nats(), self._loop).result()
        self._projector_thread.start()

    def _serve_projector(self) -> None:
        try:
            self.projector.serve(self._stop)
        except BaseException as e:  # noqa: BLE001 - a dead projector must not look alive
            self.failure = f"{type(e).__name__}: {e}"
            log.critical("the projector thread died; the worker stops", exc_info=True,
                         extra={"error": self.failure})
            if self._on_failure is not None:
                self._on_failure()

    async def _start_nats(self) -> None:
        self._nc = await connect(self.config.nats_url, name="fleet-worker", wait_for_server_secs=30)
        await self._nc.subscribe(LOG_APPENDED_SUBJECT, cb=self._on_appended)
        if self._publisher_factory is not None:
            self.publisher = self._publisher_factory(self._nc)
            await self.publisher.setup()
            self._publisher_stop = asyncio.Event()
            self._publisher_task = asyncio.create_task(self.publisher.run(self._publisher_stop),
                                                       name="change-publisher")
        self._heartbeat = Heartbeat(self._nc.jetstream(), self.config.process_name, self.health,
                                    self._metrics,
                                    interval_secs=self.config.heartbeat_interval_secs)
        self._heartbeat.start()

    async def _on_appended(self, msg) -> None:
        self.apply()

    def stopping(self) -> None:
        """Tell the work in hand to finish soon: a rebuild pauses after the events folded so far."""
        self._stop.set()
        self.projector.notify()

    def stop(self) -> None:
        """Stop the projector and the publisher, write a last heartbeat, close NATS."""
        self.stopping()
        if self._projector_thread.is_alive():
            self._projector_thread.join(30)

        async def close() -> None:
            if self._publisher_task is not None and self._publisher_stop is not None:
                self._publisher_stop.set()
                await self._publisher_task
            if self._heartbeat is not None:
                # the last beat ("stopped") cannot reach a NATS that is gone: do not wait for it
                connected = self._nc is not None and self._nc.is_connected
                try:
                    await asyncio.wait_for(self._heartbeat.stop(), 5 if connected else 0.5)
                except asyncio.TimeoutError:
                    log.info("last heartbeat not written: NATS is not reachable")
            if self._nc is not None:
                await _close_nats(self._nc)

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    # -- health --------------------------------------------------------------

    def _active_checkpoint(self) -> tuple[int | None, int | None]:
        """(active version, its checkpoint) read-only, when the projector does not hold it."""
        try:
            with GraphReader(self.config.projections_dir, self.projector.name) as reader:
                counts = reader.counts()
            return counts["version"], counts["position"]
        except FleetError:
            return None, None

    def _log_head(self) -> int:
        """The log's head read now (0 when there is no log yet)."""
        try:
            with EventLog(self.config.log_path, readonly=True) as event_log:
                return event_log.head
        except FleetError:
            return 0

    def health(self) -> tuple[str, dict]:
        """Heartbeat state and details (projection lag and progress for stuck detection)."""
        stats = self.projector.stats
        version, checkpoint = stats.version, stats.position
        if version is None:
            # Not writing (e.g. another process holds the version's writer lock):
            # report the active version's own checkpoint, so lag shows as stuck.
            version, checkpoint = self._active_checkpoint()
        now = time.monotonic()
        if stats.version is not None:
            self._rate.add(now, stats.position)
        # The projector learns the head only when a batch comes back full (a short one read up
        # to the head it saw): what was appended since, it has not seen. Read the log's head
        # for every heartbeat, so lag is never 0 while entries wait (or before its first look).
        head = max(stats.head, self._log_head())
        lag = max(0, head - (checkpoint or 0))
        projections = [{
            "name": self.projector.name, "version": version, "state": "ok",
            "checkpoint": checkpoint if version is not None else None,
            "head": head, "lag": lag,
            "progress_at": self._progress_at, "poisoned": stats.poisoned,
            "batches": stats.batches, "outbox": stats.outbox, "pruned": stats.pruned,
            "wakes": {"notified": self._wakes.notified, "commits": self._wakes.commits},
            "fsync": sync_mode(), **_speed(lag, self._rate.rate(now) if stats.version is not None else 0.0),
        }]
        if version is None and self._rebuilding:
            projections = []  # nothing active yet: the first version is being built
        for building in sorted(self._rebuilding):
            progress, window = self._rebuild_progress.get(building, (None, None))
            position = progress.position if progress is not None else 0
            head = max(head, progress.target if progress is not None else 0)
            lag = max(0, head - position)
            projections.append({"name": self.projector.name, "version": building, "state": "rebuilding",
                                "first_build": version is None, "checkpoint": position, "head": head,
                                "lag": lag, "progress_at": time.time(),
                                **_speed(lag, window.rate(now) if window is not None else 0.0)})
        details: dict[str, Any] = {"projections": projections,
                                   "backlog": projections[0]["lag"] if projections else 0,
                                   "progress_at": self._progress_at}
        if self.publisher is not None:
            details["changes"] = self.publisher.health()[1]
        state = "rebuilding" if self._rebuilding else "ok"
        if stats.version is None and version is not None and version < self.projector.version:
            details["rolled_back"] = (
                f"active v{version} is older than this code's v{self.projector.version}: nothing"
                f" applies it until v{version}'s release runs (or `fleet replay` rolls forward)")
        if self.failure is not None:
            state = "failed"
            details["failure"] = f"the projector thread died: {self.failure}"
        elif stats.outdated_by is not None:
            # The process that runs the active version's code reports it; this one only says why
            # it is idle.
            state = "outdated"
            details.update(projections=[], backlog=0, outdated=(
                f"code v{self.projector.version}, active v{stats.outdated_by}: deploy the new code"
                " or roll back"))
        return state, details


def _speed(lag: int, rate: float) -> dict[str, Any]:
    """A projection's apply rate, its ETA and, when behind, the line that says so."""
    eta = eta_secs(lag, rate)
    out: dict[str, Any] = {"events_per_sec": round(rate, 1),
                           "eta_secs": round(eta, 1) if eta is not None else None}
    if lag:
        out["catching_up"] = catch_up_line(lag, rate)
    return out


async def _close_nats(nc) -> None:
    """Drain when connected (what is pending goes out); close at once when NATS is gone."""
    if nc.is_connected:
        try:
            await asyncio.wait_for(nc.drain(), 5)
            return
        except Exception as e:  # noqa: BLE001 - it went away meanwhile: close below
            log.info("nats drain failed; closing", extra={"error": repr(e)})
    try:
        await nc.close()
    except OSError as e:  # the transport was lost already
        log.info("nats connection closed with an error", extra={"error": repr(e)})
