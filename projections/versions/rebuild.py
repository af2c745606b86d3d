"""Rebuild a projection version from log position 0 beside the active one.

Phases, each resumable because every segment commits with its checkpoint:

1. **bulk**: positions ``checkpoint+1 .. head-at-start`` through the fold
   engine (:mod:`projections.fold.engine`): direct handlers fold decoded
   events into compact in-memory state until the memory budget
   (``budget_bytes``, ``FLEET_FOLD_BUDGET_MB``), then every table's writes go
   sorted, appended past each table's last key, with the checkpoint in one
   transaction, and the next segment goes on; state from earlier segments
   is read once per key per segment. No outbox records (DESIGN invariant
   8); poison is recorded and skipped as live apply does (``strict`` stops).
2. **catch-up**: the same fold, to the head as it moves, until the version
   reaches it.
3. **promote**: one ``rebuilt`` outbox record, then the ACTIVE pointer
   switch, then (``emit_diff``) the diff and ``synced``. Readers of the old
   version never notice; the projector switches to the new version on its
   next iteration.

Kill the process at any point and run it again: it resumes from the
version's own checkpoint (``resumed_from`` in the result says where).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from events.log import EventLog
from projections.changes.outbox import OutboxReader, append_rebuilt
from projections.errors import VersionDamaged, VersionStateError
from projections.fold.engine import DEFAULT_BUDGET_BYTES, FoldProgress, fold_log
from projections.model.ontology import NAME, VERSION
from projections.store.env import DEFAULT_MAP_SIZE
from projections.store.graph import GraphStore
from projections.store.lock import WriterLock
from projections.versions import transition
from projections.versions.catalog import BUILDING, Versions, read_meta
from projections.versions.digest import digest
from projections.versions.lanes import read_watermark

__all__ = ["RebuildProgress", "RebuildResult", "rebuild"]

log = logging.getLogger(__name__)

#: how long a rebuild waits for the version's writer lock: a projector that was writing the
#: version (until a rollback a moment ago) lets go on its next step; a rebuild running
#: elsewhere holds it for longer, and this one then stops with StoreBusy naming it
LOCK_WAIT_SECS = 10.0


@dataclass(frozen=True)
class RebuildProgress:
    """One progress report: where the rebuild is and how fast it goes."""

    phase: str  # "bulk", "catch-up" or "promoted"
    version: int
    position: int
    target: int
    resumed_from: int
    events_per_sec: float
    eta_secs: float | None
    elapsed_secs: float
    #: the fold's in-memory state when its last segment was written, and its budget
    state_bytes: int = 0
    budget_bytes: int = 0


@dataclass(frozen=True)
class RebuildResult:
    """What a :func:`rebuild` call did (``asdict`` gives the ``--json`` summary)."""

    projection: str
    version: int
    previous: int | None
    resumed_from: int
    position: int
    events: int
    bulk_events: int
    bulk_secs: float
    total_secs: float
    promoted: bool
    interrupted: bool
    digest: str | None
    #: logged events that could not be applied: recorded and skipped, as live apply does
    poisoned: int = 0
    #: what the diff from the replaced version appended after the ``rebuilt`` notice
    diff: dict | None = None

    @property
    def bulk_events_per_sec(self) -> float:
        """Throughput of the bulk phase."""
        return self.bulk_events / self.bulk_secs if self.bulk_secs else 0.0

    def as_dict(self) -> dict:
        """The summary as plain data."""
        return asdict(self) | {"bulk_events_per_sec": round(self.bulk_events_per_sec)}


def rebuild(
    log_path: str | Path,
    projections_dir: str | Path,
    *,
    name: str = NAME,
    version: int = VERSION,
    from_scratch: bool = False,
    promote: bool = True,
    progress: Callable[[RebuildProgress], None] | None = None,
    stop: threading.Event | None = None,
    budget_bytes: int = DEFAULT_BUDGET_BYTES,
    map_size: int = DEFAULT_MAP_SIZE,
    with_digest: bool = True,
    strict: bool = False,
    until: int | None = None,
    emit_diff: bool = False,
    diff_max: int | None = None,
) -> RebuildResult:
    """Build ``version`` of projection ``name`` from the log, then promote it.

    An event that cannot be applied is poison, recorded and skipped as the
    live projector does, so that both stay equal; ``strict`` stops at it.
    ``until`` stops at that log position instead of the head (a check).
    ``emit_diff`` appends, after the promotion's ``rebuilt`` notice, the changes
    that turn the replaced version (or an empty graph) into this one and the
    ``synced`` record that closes them, or, above ``diff_max`` changes, a
    ``synced`` record that says ``resync``
    (:func:`projections.versions.transition.emit_diff`).
    """
    versions = Versions(projections_dir, name)
    _check_buildable(versions, version)
    path = versions.path(version)
    what = f"{name} v{version}"
    event_log = EventLog(log_path, readonly=True)  # before the lock: a missing log must not leave it held
    try:
        # Held from before the wipe of a build from scratch until the end: a worker of the same
        # code never sees the version missing (and builds it itself) in between.
        lock = WriterLock(path, what=what).acquire(wait_secs=LOCK_WAIT_SECS)
    except BaseException:
        event_log.close()
        raise
    try:
        # Again under the lock: a rebuild that waited for it (a duplicate task) finds the version
        # promoted by the one it waited for, and must not write the live version.
        active = _check_buildable(versions, version)
        if from_scratch:
            meta = read_meta(path)
            # An incarnation that was ever promoted may have published message ids: the new one
            # must not reuse them (its publisher shifts its sequence past the stream's).
            published = bool(meta.get("promoted_at") or meta.get("reincarnation_of"))
            if published:
                _wait_published(path, what)
            _wipe(path, keep=lock.path.name)
            versions.create(version)
            if published:
                versions.mark_reincarnation(
                    version, f"v{version} replayed from scratch at {int(time.time())}")
        versions.create(version)
        if versions.info(version).state != BUILDING:
            versions.mark_building(version)
    except BaseException:
        lock.release()
        event_log.close()
        raise
    try:
        try:
            store = GraphStore(path, create=True, map_size=map_size)
        except VersionDamaged as e:  # a machine crash cut a deferred-fsync build short
            lock.release()
            aside = versions.set_aside(version)
            log.error("rebuild found its version damaged by a machine crash: set aside, starting"
                      " over", extra={"projection": name, "version": version,
                                      "moved_to": str(aside), "reason": str(e)})
            versions.create(version)
            lock = WriterLock(path, what=f"{name} v{version}").acquire()
            store = GraphStore(path, create=True, map_size=map_size)
    except BaseException:
        lock.release()
        event_log.close()
        raise
    try:
        return _run(versions, version, active, store, event_log, Path(log_path), promote=promote,
                    progress=progress, stop=stop, budget_bytes=budget_bytes,
                    with_digest=with_digest, strict=strict, until=until, emit_diff=emit_diff,
                    diff_max=diff_max)
    finally:
        event_log.close()
        store.close()
        lock.release()


def _check_buildable(versions: Versions, version: int) -> int | None:
    """The active version, unless it forbids building ``version`` (VersionStateError)."""
    name, active = versions.name, versions.active()
    if active is not None and active > version:
        raise VersionStateError(
            f"{name} v{active} is active and newer than v{version} - a rebuild never replaces a"
            f" newer version (a stale request?); `fleet rollback {name}` is the operator's way back")
    if active == version:
        raise VersionStateError(
            f"{name} v{version} is already active - the projector keeps it current;"
            " bump the projection VERSION to rebuild, or roll back first"
        )
    return active


def _wipe(path: Path, *, keep: str) -> None:
    """Delete everything in a version's folder but the writer lock the caller holds.

    Files are unlinked in place: a process that still holds one open (the
    publisher's watermark, a reader's environment) keeps its own copy, and
    the folder never disappears, so nobody takes the version for missing.
    """
    for entry in path.iterdir():
        if entry.name == keep:
            continue
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink(missing_ok=True)


def _wait_published(path: Path, what: str, wait_secs: float = 3 * LOCK_WAIT_SECS) -> None:
    """Wait until the change publisher has sent the version's whole outbox (a promoted version
    is wiped only then: subscribers' copies of it must be complete for the next diff)."""
    deadline = time.monotonic() + wait_secs
    while True:
        reader = OutboxReader(path)
        try:
            left = reader.head() - read_watermark(path)
        finally:
            reader.close()
        if left <= 0:
            return
        if time.monotonic() >= deadline:
            raise VersionStateError(
                f"{what} still has {left} changes the change publisher has not sent; wiping it now"
                " would cut them from subscribers' feed - start the fleet's worker (or `fleet changes"
                " publish --until-drained`) and run this again once they are out")
        time.sleep(0.2)


def _run(versions: Versions, version: int, active: int | None, store: GraphStore,
         event_log: EventLog, log_path: Path, *, promote: bool,
         progress: Callable[[RebuildProgress], None] | None, stop: threading.Event | None,
         budget_bytes: int, with_digest: bool, strict: bool, until: int | None, emit_diff: bool,
         diff_max: int | None) -> RebuildResult:
    started = time.perf_counter()
    resumed_from = store.checkpoint()
    target = event_log.head if until is None else min(until, event_log.head)
    position = resumed_from
    poisoned = 0
    log.info("rebuild started", extra={"projection": versions.name, "version": version,
                                       "resumed_from": resumed_from, "target": target,
                                       "budget_bytes": budget_bytes})

    def fold(phase: str, end: int) -> bool:
        """Fold up to ``end``; False when stopped on the way."""
        nonlocal position, poisoned

        def report(p: FoldProgress) -> None:
            if progress is None:
                return
            elapsed = time.perf_counter() - started
            rate = (p.position - resumed_from) / elapsed if elapsed > 0 else 0.0
            eta = (end - p.position) / rate if rate > 0 else None
            progress(RebuildProgress(phase, version, p.position, end, resumed_from, rate, eta,
                                     elapsed, p.state_bytes, p.budget_bytes))

        folded = fold_log(store, log_path, end=end, budget_bytes=budget_bytes, progress=report,
                          strict=strict, stop=stop)
        position = max(position, folded.position)
        poisoned += len(folded.poisoned)
        return position >= end

    def interrupted() -> RebuildResult:
        elapsed = time.perf_counter() - started
        return RebuildResult(versions.name, version, active, resumed_from, position,
                             position - resumed_from, position - resumed_from, elapsed, elapsed,
                             False, True, None, poisoned)

    if position < target and not fold("bulk", target):
        return interrupted()
    bulk_secs = time.perf_counter() - started
    bulk_events = position - resumed_from

    while True:
        head = event_log.head if until is None else until
        if position >= head:
            break
        if (stop is not None and stop.is_set()) or not fold("catch-up", head):
            return interrupted()
    versions.mark_ready(version)
    store.env.env.sync(True)
    result_digest = digest(store).hexdigest if with_digest else None
    promoted = False
    diff = None
    if promote:
        # A version rebuilt after a machine crash replaces its damaged self: subscribers
        # carry their copy of it over, as they would from any previous version.
        replaced = version if active is None and versions.reincarnation_of(version) else active
        append_rebuilt(store, projection=versions.name, version=version, previous=replaced,
                            digest=result_digest)
        versions.promote(version)
        promoted = True
        if progress is not None:
            elapsed = time.perf_counter() - started
            progress(RebuildProgress("promoted", version, position, position, resumed_from,
                                     (position - resumed_from) / elapsed if elapsed else 0.0, 0.0,
                                     elapsed, 0, budget_bytes))
        if emit_diff:
            diff = transition.emit_diff(versions.root.parent, projection=versions.name,
                                        version=version, previous=replaced,
                                        map_size=store.env.env.info()["map_size"],
                                        max_changes=diff_max).as_dict()
    total = time.perf_counter() - started
    log.info("rebuild finished", extra={"projection": versions.name, "version": version,
                                        "position": position, "promoted": promoted,
                                        "bulk_events_per_sec": round(bulk_events / bulk_secs)
                                        if bulk_secs else None})
    return RebuildResult(versions.name, version, active, resumed_from, position,
                         position - resumed_from, bulk_events, bulk_secs, total, promoted, False,
                         result_digest, poisoned, diff)

