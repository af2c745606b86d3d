"""The projector: keeps the graph projection current with the log.

``Projector(log_path, projections_dir).run(stop)`` applies new log entries to
the active version in batches (exactly once: state and checkpoint commit in
one LMDB transaction), writing graph-change records to the version's outbox.
It wakes on :meth:`Projector.notify` (the ingest worker or an actor calls it
after a commit) and also polls the log head every ``poll_interval_ms``, so a
lost notification only costs latency.

When the code's projection version is not the active one (first start, or a
deploy that bumped ``projections.ontology.VERSION``), the projector builds
that version in a background thread from log position 0 while queries keep
reading the old one, then promotes it and carries on with it. The old
version's apply logic is not in this code, so the old version stops moving
until the promotion. A version an operator rolled back from is left alone.

Poison events (undecodable or unappliable) are recorded with their position
and reason and skipped; ``fleet projections`` shows them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry import metrics, propagate, trace

from events.errors import FleetError, NotFound
from events.log import EventLog
from projections.applier import Applier, plan_rows
from projections.errors import StoreBusy
from projections.lmdbenv import DEFAULT_MAP_SIZE
from projections.ontology import NAME, VERSION
from projections.rebuild import RebuildProgress, RebuildResult, rebuild
from projections.store import GraphStore
from projections.versions import BUILDING, READY, RETIRED, Versions, WriterLock

__all__ = ["Projector", "ProjectorConfig", "ProjectorStats", "run_rebuild"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
meter = metrics.get_meter(__name__)
_events = meter.create_counter("fleet.projector.events", unit="{event}",
                               description="Log entries handled by the projector, by outcome")
_batch_ms = meter.create_histogram("fleet.projector.batch.duration", unit="ms",
                                   description="Latency of one projector batch (read, apply, commit)")
_lag = meter.create_gauge("fleet.projector.lag", unit="{event}",
                          description="Log head minus the active version's checkpoint")
_rebuild_position = meter.create_gauge("fleet.projection.rebuild.position", unit="{event}",
                                       description="Log position a running rebuild has reached")
_rebuild_rate = meter.create_gauge("fleet.projection.rebuild.rate", unit="{event}/s",
                                   description="Events per second of a running rebuild")


@dataclass(frozen=True, kw_only=True)
class ProjectorConfig:
    """How the projector runs (built from Settings in ``ops``)."""

    batch_max: int = 10_000
    poll_interval_ms: int = 200
    auto_rebuild: bool = True
    rebuild_workers: int | None = None
    rebuild_batch_events: int = 20_000
    map_size: int = DEFAULT_MAP_SIZE


@dataclass
class ProjectorStats:
    """Counters of one projector run."""

    applied: int = 0
    poisoned: int = 0
    batches: int = 0
    outbox: int = 0
    version: int | None = None
    position: int = 0
    head: int = 0
    rebuilds: list[dict] = field(default_factory=list)
    rebuild_error: str | None = None

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)


def run_rebuild(log_path: Path, projections_dir: Path, **kwargs) -> RebuildResult:
    """:func:`projections.rebuild.rebuild` with a span and progress metrics."""
    user_progress = kwargs.pop("progress", None)

    def progress(p: RebuildProgress) -> None:
        attrs = {"projection": NAME, "version": p.version, "phase": p.phase}
        _rebuild_position.set(p.position, attrs)
        _rebuild_rate.set(p.events_per_sec, attrs)
        if user_progress is not None:
            user_progress(p)

    with tracer.start_as_current_span("projection.rebuild") as span:
        result = rebuild(log_path, projections_dir, progress=progress, **kwargs)
        span.set_attribute("projection.version", result.version)
        span.set_attribute("projection.position", result.position)
        span.set_attribute("projection.resumed_from", result.resumed_from)
        return result


class Projector:
    """Applies the log to the active projection version until stopped."""

    def __init__(self, log_path: str | Path, projections_dir: str | Path,
                 config: ProjectorConfig = ProjectorConfig(), *, name: str = NAME,
                 version: int = VERSION) -> None:
        self.log_path = Path(log_path)
        self.projections_dir = Path(projections_dir)
        self.config = config
        self.name = name
        self.version = version
        self.versions = Versions(self.projections_dir, name)
        self.stats = ProjectorStats()
        self._log: EventLog | None = None
        self._head_log: EventLog | None = None
        self._store: GraphStore | None = None
        self._lock: WriterLock | None = None
        self._applier: Applier | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._rebuild: threading.Thread | None = None
        self._rebuild_stop = threading.Event()
        self._warned: set[str] = set()

    # -- signalling ----------------------------------------------------------

    def notify(self) -> None:
        """Wake the projector now (thread-safe; new log entries were committed)."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        try:
            loop.call_soon_threadsafe(wake.set)
        except RuntimeError:
            pass  # the loop is closed: the projector has stopped

    def rebuild_needed(self) -> int | None:
        """The version to build before this code can apply anything, or None.

        For a caller that runs rebuilds itself (an actor) instead of the
        projector's own background thread (``auto_rebuild=False``).
        """
        if self.versions.active() == self.version or self.rebuilding or self.stats.rebuild_error:
            return None
        return self.version if self._should_rebuild() else None

    def pending(self) -> bool:
        """Whether the log has entries past the last applied position (cheap, thread-safe).

        Uses its own log connection and only the position the last
        :meth:`step` recorded, so a poller thread may call it while another
        thread steps.
        """
        if self._head_log is None:
            try:
                self._head_log = EventLog(self.log_path, readonly=True)
            except NotFound:
                return False
        head = self._head_log.head
        return head > self.stats.position and self.versions.active() == self.version

    def close(self) -> None:
        """Stop a background rebuild, release the version, its writer lock and the log."""
        self._shutdown()
        if self._head_log is not None:
            self._head_log.close()
            self._head_log = None

    @property
    def rebuilding(self) -> bool:
        """Whether a background rebuild is running."""
        return self._rebuild is not None and self._rebuild.is_alive()

    # -- the loop ------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, until_caught_up: bool = False) -> ProjectorStats:
        """Apply batches until ``stop`` is set (or, with ``until_caught_up``, lag is 0)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        interval = self.config.poll_interval_ms / 1000
        log.info("projector started", extra={"projection": self.name, "code_version": self.version})
        try:
            while not stop.is_set():
                self._wake.clear()
                applied = await asyncio.to_thread(self.step)
                if until_caught_up and self._caught_up():
                    break
                if applied >= self.config.batch_max:
                    continue
                waiters = [asyncio.ensure_future(self._wake.wait()),
                           asyncio.ensure_future(stop.wait())]
                await asyncio.wait(waiters, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
                for w in waiters:
                    w.cancel()
        finally:
            await asyncio.to_thread(self._shutdown)
        log.info("projector stopped", extra={"applied": self.stats.applied,
                                             "poisoned": self.stats.poisoned})
        return self.stats

    def _caught_up(self) -> bool:
        """Nothing left to do right now (or nothing this code can do)."""
        if self.stats.rebuild_error:
            return True
        if self.rebuilding:
            return False
        if self._store is None:
            # Active is not the code's version and no rebuild is coming (rolled back from).
            return self._log is not None and self.versions.active() != self.version and not (
                self.config.auto_rebuild and self._should_rebuild())
        return self.stats.lag == 0

    def step(self) -> int:
        """One iteration: pick the version to write, apply one batch; events applied."""
        event_log = self._event_log()
        if event_log is None:
            return 0
        if not self._target():
            self.stats.head = event_log.head
            return 0
        assert self._store is not None and self._applier is not None
        checkpoint = self._store.checkpoint()
        with tracer.start_as_current_span("projector.batch") as span:
            started = time.perf_counter()
            rows = next(event_log.read_payloads(checkpoint + 1, batch_size=self.config.batch_max), [])
            if rows:
                result = self._applier.apply(plan_rows(rows))
                self._record(result, started, span)
                checkpoint = result.checkpoint
                _trace_applied(event_log, rows[0][0], rows[-1][0], self.stats.version)
            head = event_log.head
        self.stats.position, self.stats.head = checkpoint, head
        _lag.set(max(0, head - checkpoint), {"projection": self.name, "version": self.stats.version})
        return len(rows)

    def _record(self, result, started: float, span) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        attrs = {"projection": self.name, "version": self.stats.version}
        span.set_attribute("projector.applied", result.applied)
        span.set_attribute("projector.checkpoint", result.checkpoint)
        _batch_ms.record(elapsed_ms, attrs)
        _events.add(result.applied, attrs | {"outcome": "applied"})
        self.stats.applied += result.applied
        self.stats.batches += 1
        self.stats.outbox += result.outbox
        for poison in result.poisoned:
            _events.add(1, attrs | {"outcome": "poison"})
            self.stats.poisoned += 1
            log.error("poison event skipped", extra={"position": poison.position,
                                                    "event_id": poison.event_id,
                                                    "event_type": poison.event_type,
                                                    "reason": poison.reason})

    # -- versions --------------------------------------------------------------

    def _event_log(self) -> EventLog | None:
        if self._log is None:
            try:
                self._log = EventLog(self.log_path, readonly=True)
            except NotFound:
                self._warn_once("nolog", "no log yet; waiting for it", path=str(self.log_path))
                return None
        return self._log

    def _target(self) -> bool:
        """Hold the store of the version to write; False when there is none right now."""
        active = self.versions.active()
        if active == self.version:
            return self._open(active)
        self._close_store()
        if not self.rebuilding and self.config.auto_rebuild and self._should_rebuild():
            self._start_rebuild()
        return False

    def _should_rebuild(self) -> bool:
        if self.stats.rebuild_error:
            return False
        if not self.versions.exists(self.version):
            return True
        state = self.versions.info(self.version).state
        if state == RETIRED:
            self._warn_once("retired", "code version was rolled back from; not rebuilding it",
                            code_version=self.version, active=self.versions.active())
            return False
        return state in (BUILDING, READY)

    def _open(self, version: int) -> bool:
        if self._store is not None and self.stats.version == version:
            return True
        self._close_store()
        path = self.versions.path(version)
        lock = WriterLock(path, what=f"{self.name} v{version}")
        try:
            lock.acquire()
        except StoreBusy as e:
            self._warn_once(f"busy{version}", str(e))
            return False
        self._lock = lock
        self._store = GraphStore(path, map_size=self.config.map_size)
        self._applier = Applier(self._store, precise=True, strict=False, outbox=True,
                                describe=self._describe)
        self.stats.version = version
        log.info("projector writing version", extra={"projection": self.name, "version": version})
        return True

    def _describe(self, position: int) -> tuple[str | None, str | None]:
        assert self._log is not None
        entry = self._log.get(position)
        return entry.event_id, entry.type

    def _start_rebuild(self) -> None:
        log.info("starting rebuild", extra={"projection": self.name, "version": self.version,
                                            "active": self.versions.active()})
        self._rebuild_stop.clear()
        self._rebuild = threading.Thread(target=self._rebuild_thread, name="projection-rebuild",
                                         daemon=True)
        self._rebuild.start()

    def _rebuild_thread(self) -> None:
        try:
            result = run_rebuild(self.log_path, self.projections_dir, name=self.name,
                                 version=self.version, stop=self._rebuild_stop,
                                 workers=self.config.rebuild_workers,
                                 batch_events=self.config.rebuild_batch_events,
                                 map_size=self.config.map_size, with_digest=False)
            self.stats.rebuilds.append(result.as_dict())
        except StoreBusy as e:
            log.info("rebuild already running elsewhere", extra={"reason": str(e)})
        except FleetError as e:
            self.stats.rebuild_error = str(e)
            log.error("rebuild failed", extra={"projection": self.name, "version": self.version,
                                               "error": str(e)})
        except Exception as e:  # noqa: BLE001 - a crashed rebuild must not kill the projector
            self.stats.rebuild_error = f"{type(e).__name__}: {e}"
            log.exception("rebuild crashed", extra={"projection": self.name})
        finally:
            self.notify()

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
            self._applier = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _shutdown(self) -> None:
        self._rebuild_stop.set()
        if self._rebuild is not None:
            self._rebuild.join()
        self._close_store()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _warn_once(self, key: str, message: str, **extra: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, extra=extra)


def _trace_applied(event_log: EventLog, first: int, last: int, version: int | None) -> None:
    """Continue the trace of each traced event in the batch with an apply span."""
    for position, traceparent in event_log.traceparents(first, last).items():
        parent = propagate.extract({"traceparent": traceparent})
        span = tracer.start_span("projection.apply", context=parent)
        span.set_attribute("fleet.log.position", position)
        span.set_attribute("projection.version", version or 0)
        span.end()
