"""``--emit-diff``: after a promotion, the previous version's graph turned into the new one.

Takes the versions' writer locks so neither side changes underneath, then
appends the difference (:func:`projections.changes.diff.append_diff`) right
after the new version's ``rebuilt`` notice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import lmdb

from projections.changes.diff import DiffSummary, append_diff
from projections.changes.outbox import append_rebuilt
from projections.errors import StoreBusy, UnknownVersion, VersionStateError
from projections.store.env import DEFAULT_MAP_SIZE
from projections.store.graph import GraphStore
from projections.store.lock import WriterLock
from projections.versions.catalog import ACTIVE, BUILDING, Versions
from projections.versions.digest import digest

__all__ = ["emit_diff", "rollback"]

log = logging.getLogger(__name__)
_UNSET: object = object()


def emit_diff(projections_dir: str | Path, *, projection: str = "graph", version: int | None = None,
              previous: int | None = _UNSET, lock_wait_secs: float = 30.0,
              map_size: int = DEFAULT_MAP_SIZE) -> DiffSummary:
    """Append the diff ``previous`` -> ``version`` to ``version``'s outbox; call after promotion.

    ``version`` defaults to the active version and ``previous`` to the version
    it replaced (None: diff against an empty graph, i.e. a full snapshot).
    Waits up to ``lock_wait_secs`` for the previous version's writer lock (the
    projector lets go of it on its first step after the promotion) and holds
    it meanwhile, so the old side cannot change and the change publisher holds
    the new version back until the diff is in. The new version's writer lock
    is taken when free; when a live projector already holds it, LMDB's own
    writer lock serialises the append with its batches (the diff touches only
    the outbox, never the graph, so the projector's in-memory state stays true).
    """
    started = time.perf_counter()
    versions = Versions(projections_dir, projection)
    version = versions.active() if version is None else version
    if version is None:
        raise VersionStateError(f"{projection} has no active version - promote one before emitting a diff")
    info = versions.info(version)
    if info.state != ACTIVE:
        raise VersionStateError(
            f"{projection} v{version} is {info.state}, not active - the diff follows its `rebuilt`"
            " notice, which only a promotion writes; promote it first")
    previous = info.previous if previous is _UNSET else previous
    if previous is not None and not versions.exists(previous):
        raise UnknownVersion(
            f"{projection} v{previous} (the version v{version} replaced) is not on disk - without it"
            " there is nothing to diff against; downstream must resync from the query API")
    locks: list[WriterLock] = []
    stores: list[GraphStore] = []
    try:
        old = None
        if previous is not None:
            old_lock = WriterLock(versions.path(previous), what=f"{projection} v{previous}")
            old_lock.acquire(wait_secs=lock_wait_secs)
            locks.append(old_lock)
            old = GraphStore(versions.path(previous), map_size=map_size)
            stores.append(old)
        new_lock = WriterLock(info.path, what=f"{projection} v{version}")
        try:
            new_lock.acquire(wait_secs=min(1.0, lock_wait_secs))
            locks.append(new_lock)
        except StoreBusy:
            log.info("new version is being written; appending the diff under LMDB's writer lock",
                     extra={"projection": projection, "version": version})
        new = GraphStore(info.path, map_size=map_size)
        stores.append(new)
        while True:
            try:
                summary = append_diff(new, old, projection, version, previous)
                break
            except lmdb.MapFullError:
                new.env.grow()
    finally:
        for store in stores:
            store.close()
        for lock in reversed(locks):
            lock.release()
    summary = DiffSummary(**(asdict(summary) | {"elapsed_secs": time.perf_counter() - started}))
    log.info("diff emitted", extra=summary.as_dict())
    return summary


def rollback(projections_dir: str | Path, *, projection: str = "graph", lock_wait_secs: float = 30.0
             ) -> tuple[int, int, DiffSummary]:
    """Re-activate the version the active one replaced, and tell subscribers exactly what changed.

    The restored version's outbox gets a ``rebuilt`` notice (``previous``: the
    version rolled back from) before the switch - nobody publishes a retired
    version's outbox, so it goes out when the version is active again - and
    after the switch the diff from the version rolled back from. Returns
    ``(from, to, diff summary)``.
    """
    versions = Versions(projections_dir, projection)
    current = versions.active()
    target = versions.info(current).previous if current is not None else None
    if (current is not None and target is not None and versions.exists(target)
            and versions.info(target).state != BUILDING):
        with GraphStore(versions.path(target)) as restored:
            append_rebuilt(restored, projection=projection, version=target, previous=current,
                           digest=digest(restored).hexdigest)
    current, target = versions.rollback()
    summary = emit_diff(projections_dir, projection=projection, version=target, previous=current,
                        lock_wait_secs=lock_wait_secs)
    return current, target, summary
