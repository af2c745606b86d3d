"""What the ``worker`` process's actors run on: the projector and the change publisher.

:class:`WorkerRuntime` owns one :class:`~workers.projector.Projector` (its
apply step is serialised by a lock, so any number of dramatiq threads may
deliver ``graph.apply``), an asyncio loop thread for the NATS side (change
publisher, heartbeat, log notifications), and a poller. The projector is
woken two ways, never only one: a ``fleet.log.appended`` notification that
the ingest worker publishes after each commit, and polling of the log head
every ``poll_interval_secs``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from events.errors import FleetError

from projections.query import GraphReader

from .heartbeat import Heartbeat
from .nats import LOG_APPENDED_SUBJECT, connect
from .projector import Projector, ProjectorConfig, run_rebuild

__all__ = ["RuntimeConfig", "WorkerRuntime"]

log = logging.getLogger(__name__)

@dataclass(frozen=True, kw_only=True)
class RuntimeConfig:
    """Where the worker's parts live and how often it looks."""

    log_path: Path
    projections_dir: Path
    nats_url: str
    projector: ProjectorConfig = ProjectorConfig()
    poll_interval_secs: float = 0.2
    apply_batches_per_message: int = 20
    heartbeat_interval_secs: float = 2.0


class WorkerRuntime:
    """Projector + change publisher + heartbeat for one worker process."""

    def __init__(self, config: RuntimeConfig, *, metrics: Callable[[], dict] | None = None,
                 publisher_factory: Callable[[Any], Any] | None = None) -> None:
        self.config = config
        self.projector = Projector(config.log_path, config.projections_dir, config.projector)
        self._apply_lock = threading.Lock()
        self._rebuilding: set[int] = set()
        self._metrics = metrics
        self._publisher_factory = publisher_factory
        self.publisher: Any = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="worker-nats", daemon=True)
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="worker-poller", daemon=True)
        self._wakeup = threading.Event()
        self._nc = None
        self._heartbeat: Heartbeat | None = None
        self.actors = None  # set by the process after declare_actors()
        self._progress_at = time.time()

    # -- work the actors call ------------------------------------------------

    def apply(self) -> bool:
        """Apply up to N batches; True when the projection is still behind."""
        with self._apply_lock:
            for _ in range(self.config.apply_batches_per_message):
                applied = self.projector.step()
                if applied:
                    self._progress_at = time.time()
                if self.projector.stats.lag == 0 or not applied:
                    break
            # No rebuild before the log exists: there would be nothing to build from.
            needed = self.projector.rebuild_needed() if self.config.log_path.exists() else None
        if needed is not None and self.actors is not None:
            self.actors.request_rebuild(needed)
        return self.projector.stats.lag > 0 and needed is None

    def rebuild(self, version: int) -> None:
        """Build ``version`` from the log, resumably, and promote it."""
        self._rebuilding.add(version)
        try:
            result = run_rebuild(self.config.log_path, self.config.projections_dir,
                                 version=version, workers=self.config.projector.rebuild_workers,
                                 batch_events=self.config.projector.rebuild_batch_events,
                                 map_size=self.config.projector.map_size)
            log.info("rebuild done", extra=result.as_dict())
        except FleetError as e:
            self.projector.stats.rebuild_error = str(e)
            log.error("rebuild failed", extra={"version": version, "error": str(e)})
            raise
        finally:
            self._rebuilding.discard(version)

    def publish(self) -> bool:
        """Drain the outbox once; True when records remain."""
        if self.publisher is None:
            return False
        future = asyncio.run_coroutine_threadsafe(self.publisher.publish_pending(), self._loop)
        future.result()
        return not self.publisher.drained

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> None:
        """Connect to NATS, start the heartbeat, the notification listener and the poller."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start_nats(), self._loop).result()
        self._poller.start()

    async def _start_nats(self) -> None:
        self._nc = await connect(self.config.nats_url, name="fleet-worker", wait_for_server_secs=30)
        await self._nc.subscribe(LOG_APPENDED_SUBJECT, cb=self._on_appended)
        if self._publisher_factory is not None:
            self.publisher = self._publisher_factory(self._nc)
            await self.publisher.setup()
        self._heartbeat = Heartbeat(self._nc.jetstream(), "worker", self.health, self._metrics,
                                    interval_secs=self.config.heartbeat_interval_secs)
        self._heartbeat.start()

    async def _on_appended(self, msg) -> None:
        self._wakeup.set()

    def _poll(self) -> None:
        seen_outbox = -1
        while not self._stop.is_set():
            self._wakeup.wait(self.config.poll_interval_secs)
            self._wakeup.clear()
            if self.actors is None:
                continue
            try:
                if self.projector.pending() or (self.config.log_path.exists()
                                                and self.projector.rebuild_needed() is not None):
                    self.actors.request_apply()
                outbox = self.projector.stats.outbox
                if self.publisher is not None and (not self.publisher.drained or outbox != seen_outbox):
                    seen_outbox = outbox
                    self.actors.request_publish()
            except Exception as e:  # the broker away: keep polling, health shows it
                log.warning("poll failed", extra={"error": repr(e)})
                time.sleep(1)

    def stop(self) -> None:
        """Stop polling, write a last heartbeat, close NATS and the projector."""
        self._stop.set()
        self._wakeup.set()
        if self._poller.is_alive():
            self._poller.join(10)

        async def close() -> None:
            if self._heartbeat is not None:
                await self._heartbeat.stop()
            if self._nc is not None:
                await self._nc.drain()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(30)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        with self._apply_lock:
            self.projector.close()

    # -- health --------------------------------------------------------------

    def _active_checkpoint(self) -> tuple[int | None, int | None]:
        """(active version, its checkpoint) read-only, when the projector does not hold it."""
        try:
            with GraphReader(self.config.projections_dir, self.projector.name) as reader:
                counts = reader.counts()
            return counts["version"], counts["position"]
        except FleetError:
            return None, None

    def health(self) -> tuple[str, dict]:
        """Heartbeat state and details (projection lag and progress for stuck detection)."""
        stats = self.projector.stats
        version, checkpoint = stats.version, stats.position
        if version is None:
            # Not writing (e.g. another process holds the version's writer lock):
            # report the active version's own checkpoint, so lag shows as stuck.
            version, checkpoint = self._active_checkpoint()
        projections = [{
            "name": self.projector.name, "version": version, "state": "ok",
            "checkpoint": checkpoint if version is not None else None,
            "head": stats.head, "lag": max(0, stats.head - (checkpoint or 0)),
            "progress_at": self._progress_at, "poisoned": stats.poisoned,
        }]
        if version is None and self._rebuilding:
            projections = []  # nothing active yet: the first version is being built
        for version in sorted(self._rebuilding):
            projections.append({"name": self.projector.name, "version": version, "state": "rebuilding",
                                "checkpoint": 0, "lag": 0, "progress_at": time.time()})
        details: dict[str, Any] = {"projections": projections,
                                   "backlog": projections[0]["lag"] if projections else 0,
                                   "progress_at": self._progress_at}
        if self.publisher is not None:
            details["changes"] = self.publisher.health()[1]
        state = "rebuilding" if self._rebuilding else "ok"
        return state, details
