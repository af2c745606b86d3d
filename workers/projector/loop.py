"""The projector: keeps the graph projection current with the log.

``Projector(log_path, projections_dir).run(stop)`` applies new log entries to
the active version in batches (exactly once: state and checkpoint commit in
one LMDB transaction), writing graph-change records to the version's outbox.
The loop runs in one thread of its own (:meth:`Projector.serve`): it wakes on
:meth:`Projector.notify` (thread-safe; the ingest worker's notification or a
rebuild calls it) and also polls the log head every ``poll_interval_ms``, so
a lost notification only costs latency. Each wake-up applies everything
pending, so batches grow with the load by themselves (group commit) and no
timer holds an entry back. After each commit, ``on_commit`` runs in the
projector's thread: the worker wakes its change publisher with it, in-process.

The live path pays a fixed cost per batch (an LMDB commit), so what can be
known without I/O is kept in memory: the checkpoint (this projector is the
version's only writer), the ACTIVE pointer (re-read only when the file
changes) and the log head of a short batch (the batch's last position).

A projector at least ``catchup_lag`` events behind the head (a backlog, a
worker that was stopped) folds the backlog instead, with the rebuild's fold
engine, in segments of up to ``catchup_events``: each one transaction, its
change records coalesced (one per thing the segment changed, net; README
"Catching up"). Near the head it applies batches again.

When the code's projection version is not the active one (first start, or a
deploy that bumped ``projections.model.ontology.VERSION``), the version is built
from log position 0 while queries keep reading the old one, then promoted,
and the projector carries on with it: in a background thread of its own, or,
given ``request_rebuild``, by whoever that asks (the worker's
``graph.rebuild`` actor). The old version's apply logic is not in this code,
so the old version stops moving until the promotion. A version an operator
rolled back from is left alone.

Every ``outbox_prune_secs`` the projector deletes the outbox records the
change publisher has had acknowledged (its watermark file), at most
``outbox_prune_max`` per transaction (more at the next step when more are
due), so the outbox stays small and no prune holds a batch up for long.

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
from typing import Callable

from opentelemetry import trace

from events.errors import FleetError, NotFound
from events.log import EventLog
from projections.changes.outbox import prune_outbox
from projections.errors import StoreBusy, VersionDamaged
from projections.fold.applier import Applier, BatchResult, plan_rows
from projections.fold.engine import DEFAULT_BUDGET_BYTES, fold_log
from projections.model.ontology import NAME, VERSION
from projections.store.env import DEFAULT_MAP_SIZE
from projections.store.graph import CHECKPOINT, OUTBOX_PRUNED, GraphStore
from projections.store.lock import WriterLock
from projections.versions.catalog import BUILDING, READY, RETIRED, Versions
from projections.versions.lanes import prunable
from projections.versions.pointer import ActivePointer
from workers.projector import telemetry

#: how often a projector whose version still needs building asks for a rebuild again (a task
#: that found the version being built by another process ends without retrying)
REBUILD_REQUEST_SECS = 5.0

__all__ = ["Projector", "ProjectorConfig", "ProjectorStats"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
@dataclass(frozen=True, kw_only=True)
class ProjectorConfig:
    """How the projector runs (built from Settings in ``ops``)."""

    batch_max: int = 10_000
    poll_interval_ms: int = 200
    auto_rebuild: bool = True  # build a needed version in a thread of its own (without request_rebuild)
    outbox_prune_secs: float = 0.5
    outbox_prune_max: int = 5_000  # records deleted per transaction: a few ms, then the next batch
    #: no change publisher reads this projection's outbox (a query replica's): prune every record
    unpublished: bool = False
    #: the fold engine's memory budget for a rebuild's in-memory state
    rebuild_budget_bytes: int = DEFAULT_BUDGET_BYTES
    #: a version change with more differences tells subscribers to resync instead (None: no bound)
    diff_max: int | None = None
    #: this far behind the log head (events), fold segments with coalesced change records
    #: instead of applying batches (0: never)
    catchup_lag: int = 20_000
    #: events per catch-up segment, at most (each is one transaction; stop is honoured between)
    catchup_events: int = 100_000
    map_size: int = DEFAULT_MAP_SIZE


@dataclass
class ProjectorStats:
    """Counters of one projector run."""

    applied: int = 0
    poisoned: int = 0
    batches: int = 0
    outbox: int = 0
    pruned: int = 0
    version: int | None = None
    position: int = 0
    head: int = 0
    rebuilds: list[dict] = field(default_factory=list)
    rebuild_error: str | None = None
    #: the active version when it is newer than this code's (None: not outdated)
    outdated_by: int | None = None

    @property
    def lag(self) -> int:
        return max(0, self.head - self.position)


class Projector:
    """Applies the log to the active projection version until stopped.

    ``on_commit(result)`` runs in the projector's thread after each batch it
    committed; ``request_rebuild(version)`` (when given) is called,
    from the same thread, whenever the code's version needs building, instead
    of building it in a thread of the projector's own.
    """

    def __init__(self, log_path: str | Path, projections_dir: str | Path,
                 config: ProjectorConfig = ProjectorConfig(), *, name: str = NAME,
                 version: int = VERSION, on_commit: Callable[[BatchResult], None] | None = None,
                 request_rebuild: Callable[[int], object] | None = None) -> None:
        self.log_path = Path(log_path)
        self.projections_dir = Path(projections_dir)
        self.config = config
        self.name = name
        self.version = version
        self.versions = Versions(self.projections_dir, name)
        self.stats = ProjectorStats()
        self._on_commit = on_commit
        self._request_rebuild = request_rebuild
        self._rebuild_requested_at = -REBUILD_REQUEST_SECS
        self._log: EventLog | None = None
        self._store: GraphStore | None = None
        self._lock: WriterLock | None = None
        self._applier: Applier | None = None
        self._checkpoint = 0
        self._active = ActivePointer(self.versions)
        self._pruned_upto = 0
        self._prune_at = 0.0
        self._wake = threading.Event()
        self._rebuild: threading.Thread | None = None
        self._rebuild_stop = threading.Event()
        self._warned: set[str] = set()
        self._halt: threading.Event | None = None

    # -- signalling ----------------------------------------------------------

    def notify(self) -> None:
        """Wake the projector now (thread-safe; new log entries were committed)."""
        self._wake.set()

    def close(self) -> None:
        """Stop a background rebuild, release the version, its writer lock and the log."""
        self._shutdown()

    @property
    def rebuilding(self) -> bool:
        """Whether a background rebuild is running."""
        return self._rebuild is not None and self._rebuild.is_alive()

    # -- the loop ------------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, until_caught_up: bool = False) -> ProjectorStats:
        """:meth:`serve` in a thread until ``stop`` is set (or, with ``until_caught_up``, lag is 0)."""
        halt = threading.Event()

        def on_stop(_: object) -> None:
            halt.set()
            self._wake.set()

        watcher = asyncio.ensure_future(stop.wait())
        watcher.add_done_callback(on_stop)
        try:
            return await asyncio.to_thread(self.serve, halt, until_caught_up=until_caught_up)
        finally:
            watcher.cancel()
            on_stop(None)  # a cancelled run must not leave the thread behind

    def serve(self, stop: threading.Event, *, until_caught_up: bool = False) -> ProjectorStats:
        """Apply batches until ``stop`` is set (blocking: run it in a thread of its own).

        Set :meth:`notify` as well as ``stop`` to end a wait at once.
        """
        interval = self.config.poll_interval_ms / 1000
        self._halt = stop  # a catch-up segment writes what it folded and returns when it is set
        log.info("projector started", extra={"projection": self.name, "code_version": self.version})
        try:
            while not stop.is_set():
                self._wake.clear()
                applied = self.step()
                if until_caught_up and self._caught_up():
                    break
                if applied < self.config.batch_max:
                    self._wake.wait(interval)
        finally:
            self._shutdown()
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
        assert self._applier is not None
        if self._far_behind(event_log):
            return self._catch_up(event_log)
        batch_max = self.config.batch_max
        result = None
        with tracer.start_as_current_span("projector.batch") as span:
            started = time.perf_counter()
            rows = next(event_log.read_payloads(self._checkpoint + 1, batch_size=batch_max), [])
            if rows:
                result = self._applier.apply(plan_rows(rows))
                self._checkpoint = result.checkpoint
                self._record(result, started, span)
                telemetry.trace_applied(event_log, rows[0][0], rows[-1][0], self.stats.version)
        # A short batch read up to the head: no second query to learn it.
        head = event_log.head if len(rows) >= batch_max else self._checkpoint
        self.stats.position, self.stats.head = self._checkpoint, head
        telemetry.lag.set(max(0, head - self._checkpoint), {"projection": self.name, "version": self.stats.version})
        if result is not None and self._on_commit is not None:
            self._on_commit(result)
        self._prune()
        return len(rows)

    def _far_behind(self, event_log: EventLog) -> bool:
        """Whether the log head is at least ``catchup_lag`` ahead (the head is re-read only
        when the last known one says so, or before the first batch)."""
        threshold = self.config.catchup_lag
        if not threshold:
            return False
        if self.stats.batches == 0 or self.stats.head - self._checkpoint >= threshold:
            self.stats.head = event_log.head
        return self.stats.head - self._checkpoint >= threshold

    def _catch_up(self, event_log: EventLog) -> int:
        """Fold one segment of up to ``catchup_events`` with coalesced change records."""
        assert self._store is not None
        start = self._checkpoint
        end = min(self.stats.head, start + self.config.catchup_events)
        with tracer.start_as_current_span("projector.catchup") as span:
            started = time.perf_counter()
            fold = fold_log(self._store, self.log_path, start + 1, end, changes=True,
                            budget_bytes=self.config.rebuild_budget_bytes, stop=self._halt)
            result = BatchResult(checkpoint=fold.position, applied=fold.events,
                                 poisoned=fold.poisoned, outbox=fold.outbox)
            self._checkpoint = fold.position
            self._record(result, started, span)
            span.set_attribute("projector.segments", fold.segments)
        elapsed = time.perf_counter() - started
        self.stats.position = self._checkpoint
        lag = max(0, self.stats.head - self._checkpoint)
        telemetry.lag.set(lag, {"projection": self.name, "version": self.stats.version})
        log.info("catching up", extra={
            "projection": self.name, "version": self.stats.version, "position": self._checkpoint,
            "lag": lag, "events": fold.events, "changes": fold.outbox,
            "events_per_sec": round(fold.events / elapsed) if elapsed > 0 else None})
        if self._on_commit is not None:
            self._on_commit(result)
        self._prune()
        return self._checkpoint - start

    def _record(self, result: BatchResult, started: float, span) -> None:
        elapsed_ms = (time.perf_counter() - started) * 1000
        attrs = {"projection": self.name, "version": self.stats.version}
        span.set_attribute("projector.applied", result.applied)
        span.set_attribute("projector.checkpoint", result.checkpoint)
        span.set_attribute("projector.outbox", result.outbox)
        telemetry.batch_ms.record(elapsed_ms, attrs)
        telemetry.events.add(result.applied, attrs | {"outcome": "applied"})
        self.stats.applied += result.applied
        self.stats.batches += 1
        self.stats.outbox += result.outbox
        for poison in result.poisoned:
            telemetry.events.add(1, attrs | {"outcome": "poison"})
            self.stats.poisoned += 1
            log.error("poison event skipped", extra={"position": poison.position,
                                                    "event_id": poison.event_id,
                                                    "event_type": poison.event_type,
                                                    "reason": poison.reason})

    def _prune(self) -> None:
        """Delete outbox records the publisher has had acknowledged (time-gated, bounded)."""
        now = time.monotonic()
        if now < self._prune_at or self._store is None:
            return
        watermark = (1 << 62) if self.config.unpublished else prunable(self._store.path)
        if watermark <= self._pruned_upto:
            self._prune_at = now + self.config.outbox_prune_secs
            return
        before = self._pruned_upto
        with tracer.start_as_current_span("projector.outbox.prune") as span:
            floor = prune_outbox(self._store, upto=watermark, limit=self.config.outbox_prune_max)
            span.set_attribute("changes.outbox.pruned_upto", floor)
        if floor > self._pruned_upto:
            telemetry.pruned.add(floor - self._pruned_upto, {"projection": self.name, "version": self.stats.version})
            self.stats.pruned += floor - self._pruned_upto
        self._pruned_upto = floor
        # More than one transaction's worth waiting: go on at the next step.
        if floor >= watermark or (self.config.unpublished and floor - before < self.config.outbox_prune_max):
            self._prune_at = now + self.config.outbox_prune_secs

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
        active = self._active.read()
        if active == self.version:
            self.stats.outdated_by = None
            return self._open(active)
        self._close_store()
        self.stats.version = None  # not writing: health reports the active version, not this one
        if active is not None and active > self.version:
            # A newer release runs the active version: this one holds nothing up.
            self.stats.outdated_by = active
            self._warn_once(f"outdated{active}", "this worker's code is older than the active"
                            " version: deploy the new code or roll back",
                            code_version=self.version, active=active)
            return False
        self.stats.outdated_by = None
        if not self.rebuilding and self._should_rebuild():
            if self._request_rebuild is not None:
                now = time.monotonic()
                if now - self._rebuild_requested_at >= REBUILD_REQUEST_SECS:
                    self._rebuild_requested_at = now
                    self._request_rebuild(self.version)
            elif self.config.auto_rebuild:
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
            if not self.rebuilding:  # else this process's own rebuild holds it until it is done
                self._warn_once(f"busy{version}", str(e))
            return False
        try:
            self._store = GraphStore(path, map_size=self.config.map_size)
        except VersionDamaged as e:
            lock.release()
            aside = self.versions.set_aside(version)
            log.error("projection version damaged by a machine crash: set aside, rebuilding it from"
                      " the log", extra={"projection": self.name, "version": version,
                                         "moved_to": str(aside), "reason": str(e)})
            return False
        self._lock = lock
        self._applier = Applier(self._store, precise=True, strict=False, outbox=True,
                                describe=self._describe)
        # The writer lock makes this the only writer of the checkpoint from here on.
        self._checkpoint, self._pruned_upto = self._store.meta_ints(CHECKPOINT, OUTBOX_PRUNED)
        self._prune_at = 0.0
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
            result = telemetry.run_rebuild(self.log_path, self.projections_dir, name=self.name,
                                 version=self.version, stop=self._rebuild_stop,
                                 budget_bytes=self.config.rebuild_budget_bytes,
                                 map_size=self.config.map_size, with_digest=False,
                                 emit_diff=True, diff_max=self.config.diff_max)
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
