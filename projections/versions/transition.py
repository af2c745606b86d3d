"""Version changes on the feed: after a promotion or a rollback, the old graph turned into the new.

Takes the versions' writer locks so neither side changes underneath, then
appends the difference (:func:`projections.changes.diff.append_diff`) after
the new version's ``rebuilt`` notice, closed by a ``synced`` record with the
new version's digest; or, above ``max_changes`` or without a version to
compare with, only a ``synced`` record that tells subscribers to resync.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import lmdb

from projections.changes.diff import DiffSummary, append_diff, append_resync
from projections.changes.outbox import append_rebuilt
from projections.errors import StoreBusy, VersionStateError
from projections.store.env import DEFAULT_MAP_SIZE
from projections.store.graph import GraphStore
from projections.store.lock import WriterLock
from projections.versions.catalog import ACTIVE, BUILDING, Versions
from projections.versions.digest import digest, digest_in

__all__ = ["emit_diff", "rollback"]

log = logging.getLogger(__name__)
_UNSET: object = object()


def emit_diff(projections_dir: str | Path, *, projection: str = "graph", version: int | None = None,
              previous: int | None = _UNSET, lock_wait_secs: float = 30.0,
              map_size: int = DEFAULT_MAP_SIZE, max_changes: int | None = None) -> DiffSummary:
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

    The diff is closed by a ``synced`` record carrying the new version's
    digest, computed in the same transaction (a full scan: seconds per
    million nodes, during which the new version's live batches wait). With
    more than ``max_changes`` differences, or with nothing to compare with
    (``previous`` is ``version`` itself, rebuilt after a machine crash, or is
    no longer on disk), no diff is kept and the ``synced`` record says
    ``resync``.
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
    if previous == version or (previous is not None and not versions.exists(previous)):
        # A rebuild in place of a damaged incarnation, or a previous version dropped: there is
        # nothing to compare with, and subscribers load the export instead.
        why = "same version rebuilt" if previous == version else "previous version not on disk"
        with GraphStore(info.path, map_size=map_size) as store:
            summary = append_resync(store, projection, version, previous)
        log.warning("no diff to send: subscribers are told to resync", extra={
            "projection": projection, "version": version, "previous": previous, "reason": why})
        return summary
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
                summary = append_diff(new, old, projection, version, previous,
                                      max_changes=max_changes,
                                      digest_of=lambda txn: digest_in(new, txn).hexdigest)
                break
            except lmdb.MapFullError:
                new.env.grow()
    finally:
        for store in stores:
            store.close()
        for lock in reversed(locks):
            lock.release()
    summary = DiffSummary(**(asdict(summary) | {"elapsed_secs": time.perf_counter() - started}))
    if summary.resync:
        # A first version's snapshot above the bound is routine (a subscriber starts from the
        # export either way); a version change that cannot be diffed is worth an operator's eye.
        (log.info if previous is None else log.warning)(
            "diff above the bound: not sent, subscribers are told to resync",
            extra=summary.as_dict() | {"max_changes": max_changes})
    else:
        log.info("diff emitted", extra=summary.as_dict())
    return summary


def rollback(projections_dir: str | Path, *, projection: str = "graph", lock_wait_secs: float = 30.0,
             max_changes: int | None = None) -> tuple[int, int, DiffSummary]:
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
                        lock_wait_secs=lock_wait_secs, max_changes=max_changes)
    return current, target, summary
