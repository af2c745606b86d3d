"""Fold a range of the log into a store, segment by segment, within a memory budget.

:func:`fold_log` reads log rows in chunks, decodes them, and folds them into
a :class:`~projections.fold.engine.state.Segment` until its estimated state
reaches ``budget_bytes``; then the segment's sorted writes go to the store
with the checkpoint in one transaction, and a fresh segment goes on. Kill it
at any point and call it again: it starts from the store's checkpoint.

Poison: a row that does not decode is recorded and skipped. A handler that
raises may have changed the segment halfway, so the segment is folded again
from its start up to the event before, written with the poison record, and
the fold goes on after it: no partial effect, as with the Applier. With
``strict`` the fold writes what came before the first poison and raises it.
A segment whose write LMDB refuses (some event made a key or value past its
511-byte bound) is applied again through the Applier in batches, which pins
that event as poison.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import lmdb

from events.codec import decode_event
from events.errors import InvalidEvent
from events.log import EventLog
from projections.errors import PoisonEvent, StoreError
from projections.fold.applier import MAPPED_BUDGET, Applier, mapped_bytes, plan_rows
from projections.fold.engine.flush import segment_writes, write_segment
from projections.fold.engine.handlers import fold_event
from projections.fold.engine.state import Segment
from projections.store.graph import GraphStore

__all__ = ["DEFAULT_BUDGET_BYTES", "FoldProgress", "FoldResult", "StageTimes", "fold_log"]

log = logging.getLogger(__name__)

#: The default memory budget of a segment's state. A segment's write (the write set, LMDB's
#: dirty pages) comes on top: at 1M events 512 MB peaked at 1.04 GB of RSS and 1 GB at 1.37 GB,
#: and was slower (BENCHMARKS.md, session 9).
DEFAULT_BUDGET_BYTES = 512 << 20
# The log holds accepted events only; the size limit guards ingestion, not replay.
_NO_LIMIT = 1 << 40
_MAX_CHECK_EVERY = 256  # events between two estimates of the state's size, at most
_EVENT_BYTES_MAX = 4096  # state one event adds, rarely more (a cascading delete may)
_FALLBACK_BATCH = 5_000  # events per transaction when a segment is applied event by event


@dataclass
class StageTimes:
    """CPU-side seconds per stage (wall clock, this process)."""

    read: float = 0.0
    decode: float = 0.0
    fold: float = 0.0
    write: float = 0.0


@dataclass(frozen=True)
class FoldProgress:
    """Where a fold is, after each segment written."""

    position: int
    target: int
    events: int
    segments: int
    state_bytes: int
    budget_bytes: int
    events_per_sec: float
    eta_secs: float | None


@dataclass
class FoldResult:
    """What :func:`fold_log` did."""

    position: int
    events: int
    poisoned: list[PoisonEvent] = field(default_factory=list)
    segments: int = 0
    peak_state_bytes: int = 0
    #: coalesced change records written to the outbox (``changes=True``)
    outbox: int = 0
    times: StageTimes = field(default_factory=StageTimes)


class _HandlerFailed(Exception):
    def __init__(self, index: int, poison: PoisonEvent) -> None:
        super().__init__(poison.reason)
        self.index = index
        self.poison = poison


def _decode(rows: list[tuple[int, str | bytes]]) -> list[tuple[int, object]]:
    """``(position, event)``, or ``(position, PoisonEvent)`` for a row that does not decode."""
    out = []
    for position, payload in rows:
        try:
            out.append((position, decode_event(payload, max_bytes=_NO_LIMIT)))
        except InvalidEvent as e:
            event_id, event_type = _peek(payload)
            out.append((position, PoisonEvent(position, event_id, event_type, str(e))))
    return out


def _peek(payload: str | bytes) -> tuple[str | None, str | None]:
    import msgspec

    try:
        data = msgspec.json.decode(payload)
    except msgspec.DecodeError:
        return None, None
    if not isinstance(data, dict):
        return None, None
    event_id, event_type = data.get("event_id"), data.get("type")
    return (event_id if isinstance(event_id, str) else None,
            event_type if isinstance(event_type, str) else None)


def _fold(seg: Segment, items: list, start: int, poisons: list[PoisonEvent],
          budget: float, strict: bool = False, release: Callable[[], None] | None = None) -> int:
    """Fold ``items[start:]`` until the budget is reached; the index after the last folded.

    The state's size is estimated less often while it is far below the budget;
    ``release`` (unmapping the file's pages past a bound) runs at each estimate.
    """
    n = len(items)
    i = start
    check = i + _check_step(seg, budget)
    while i < n:
        position, event = items[i]
        i += 1
        if event.__class__ is PoisonEvent:
            if strict:
                raise _HandlerFailed(i - 1, event)  # type: ignore[arg-type]
            poisons.append(event)  # type: ignore[arg-type]
        else:
            seg.position = position
            try:
                fold_event(seg, event)  # type: ignore[arg-type]
            except Exception as e:
                raise _HandlerFailed(i - 1, PoisonEvent(
                    position, event.event_id, event.__struct_config__.tag,  # type: ignore[attr-defined]
                    f"{type(e).__name__}: {e}")) from e
        if i >= check:
            if release is not None:
                release()
            step = _check_step(seg, budget)
            if not step:
                break
            check = i + step
    return i


def _check_step(seg: Segment, budget: float) -> int:
    """Events to fold before the next estimate (0: the budget is reached)."""
    left = budget - seg.state_bytes()
    if left <= 0:
        return 0
    return int(min(_MAX_CHECK_EVERY, left // _EVENT_BYTES_MAX + 1))


def _chunks(event_log: EventLog, first: int, last: int, chunk: int, times: StageTimes
            ) -> Iterator[list]:
    pages = event_log.read_payloads(first, batch_size=chunk, to_position=last)
    while True:
        t0 = time.perf_counter()
        rows = next(pages, None)
        t1 = time.perf_counter()
        times.read += t1 - t0
        if rows is None:
            return
        items = _decode(rows)
        times.decode += time.perf_counter() - t1
        for n, (position, event) in enumerate(items):
            if event.__class__ is PoisonEvent and event.event_id is None:  # type: ignore[attr-defined]
                entry = event_log.get(position)  # the log row still knows its id and type
                items[n] = (position, PoisonEvent(position, entry.event_id, entry.type,
                                                  event.reason))  # type: ignore[attr-defined]
        yield items


def fold_log(store: GraphStore, log_path: str | Path, start: int | None = None,
             end: int | None = None, *, budget_bytes: int = DEFAULT_BUDGET_BYTES,
             progress: Callable[[FoldProgress], None] | None = None,
             chunk: int = 10_000, strict: bool = False,
             stop: threading.Event | None = None, changes: bool = False) -> FoldResult:
    """Fold log positions ``start..end`` (default: after the checkpoint, to the head) into ``store``.

    ``strict`` stops at the first poison (written up to the event before it,
    then raised); ``stop`` is looked at after each chunk (the fold then writes
    what it folded and returns where it is: call again to go on). ``changes`` writes each
    segment's coalesced change records (:mod:`.changes`) to the outbox with
    it: how an active version catches up.

    Positions at or below the store's checkpoint are skipped (exactly once);
    a ``start`` past the checkpoint's next position is a gap and refused.
    Returns the last position written, the events folded, the poison
    skipped, the segments written and the largest state estimate reached.
    """
    checkpoint = store.checkpoint()
    first = checkpoint + 1 if start is None else max(start, checkpoint + 1)
    if first > checkpoint + 1:
        raise StoreError(f"{store.path} is at position {checkpoint} but the fold starts at {first}"
                         " - entries in between are missing")
    event_log = EventLog(log_path, readonly=True, cache_kib=8192)
    paused = gc.isenabled()
    gc.disable()  # a segment allocates millions of acyclic objects: collections free nothing
    try:
        target = event_log.head if end is None else min(end, event_log.head)
        return _run(store, event_log, checkpoint, first, target, budget_bytes, progress, chunk,
                    strict, stop, changes)
    finally:
        event_log.close()
        if paused:
            gc.enable()


class _Stopped(Exception):
    """``stop`` was set: leave after the segment just written."""


def _run(store: GraphStore, event_log: EventLog, checkpoint: int, first: int, target: int,
         budget_bytes: int, progress: Callable[[FoldProgress], None] | None,
         chunk: int, strict: bool, stop: threading.Event | None, changes: bool) -> FoldResult:
    result = FoldResult(position=checkpoint, events=0)
    times = result.times
    started = time.perf_counter()
    if first > target:
        return result
    env = store.env
    seg_start = first  # the first position of the open segment
    seg: Segment | None = None
    txn = None
    poisons: list[PoisonEvent] = []

    def flush(last: int) -> None:
        nonlocal seg, txn, poisons, seg_start
        assert seg is not None
        state = seg.state_bytes()
        result.peak_state_bytes = max(result.peak_state_bytes, state)
        t0 = time.perf_counter()
        ws = segment_writes(seg)
        seg = None
        env.end_read(txn)
        txn = None
        try:
            result.outbox += write_segment(store, ws, after=seg_start - 1, checkpoint=last,
                                           poisons=poisons, changes=changes)
        except lmdb.BadValsizeError as e:
            del ws
            poisons = _apply_by_batches(store, event_log, seg_start, last, changes, strict, e, result)
        times.write += time.perf_counter() - t0
        result.poisoned.extend(poisons)
        for p in poisons:
            log.warning("poison event skipped", extra={
                "path": str(store.path), "position": p.position, "event_id": p.event_id,
                "event_type": p.event_type, "reason": p.reason})
        result.events += last - seg_start + 1 - len(poisons)
        result.position = last
        result.segments += 1
        poisons = []
        seg_start = last + 1
        if progress is not None:
            elapsed = time.perf_counter() - started
            done = last - first + 1
            rate = done / elapsed if elapsed > 0 else 0.0
            progress(FoldProgress(last, target, result.events, result.segments, state,
                                  budget_bytes, rate, (target - last) / rate if rate else None))
        if stop is not None and stop.is_set() and last < target:
            raise _Stopped

    def open_segment() -> Segment:
        nonlocal txn
        txn = env.begin_read()
        return Segment(store, txn)

    def release() -> None:
        # Reading earlier segments' state maps the file's pages; they count as this
        # process's memory until unmapped (the page cache keeps them).
        if mapped_bytes() > MAPPED_BUDGET:
            env.release_pages()

    last_folded = checkpoint
    try:
        for items in _chunks(event_log, first, target, chunk, times):
            release()
            i = 0
            while i < len(items):
                if seg is None:
                    seg = open_segment()
                t0 = time.perf_counter()
                try:
                    i = _fold(seg, items, i, poisons, budget_bytes, strict, release)
                except _HandlerFailed as failed:
                    # The segment may hold half of the event: fold it again without it.
                    times.fold += time.perf_counter() - t0
                    bad = failed.poison.position
                    seg = None
                    env.end_read(txn)
                    txn = None
                    seg = open_segment()
                    poisons = _refold(seg, event_log, seg_start, bad - 1, chunk, times)
                    if strict:
                        if bad > seg_start:
                            flush(bad - 1)
                        raise failed.poison from failed
                    poisons.append(failed.poison)
                    flush(bad)
                    i = failed.index + 1
                    last_folded = bad
                    continue
                times.fold += time.perf_counter() - t0
                last_folded = items[i - 1][0]
                if seg.state_bytes() >= budget_bytes:
                    flush(last_folded)
            if stop is not None and stop.is_set() and seg is not None and last_folded < target:
                flush(last_folded)  # a stop waits for one chunk, not a whole segment
        if seg is not None:
            flush(last_folded)
    except _Stopped:
        pass
    finally:
        if txn is not None:
            env.end_read(txn)
    return result


def _apply_by_batches(store: GraphStore, event_log: EventLog, first: int, last: int, changes: bool,
                      strict: bool, error: Exception, result: FoldResult) -> list[PoisonEvent]:
    """Apply ``first .. last`` through the Applier, which pins the event whose key or value LMDB
    cannot hold (a path or name past 511 bytes) as poison; the segment's poison.

    The Applier gives the same graph (the tests hold the two paths equal); with
    ``changes`` it writes one change record per change instead of coalesced ones.
    """
    log.warning("a segment's write was refused by LMDB; applying it in batches to find the event",
                extra={"path": str(store.path), "first": first, "last": last, "error": str(error)})

    def describe(position: int) -> tuple[str | None, str | None]:
        entry = event_log.get(position)
        return entry.event_id, entry.type

    applier = Applier(store, precise=changes, strict=strict, outbox=changes, describe=describe)
    poisons: list[PoisonEvent] = []
    for rows in event_log.read_payloads(first, batch_size=_FALLBACK_BATCH, to_position=last):
        batch = applier.apply(plan_rows(rows))
        result.outbox += batch.outbox
        poisons.extend(batch.poisoned)
    return poisons


def _refold(seg: Segment, event_log: EventLog, first: int, last: int, chunk: int,
            times: StageTimes) -> list[PoisonEvent]:
    """Fold positions ``first .. last`` into ``seg`` again, whatever their size; their poison."""
    poisons: list[PoisonEvent] = []
    if last >= first:
        for items in _chunks(event_log, first, last, chunk, times):
            t0 = time.perf_counter()
            _fold(seg, items, 0, poisons, math.inf)
            times.fold += time.perf_counter() - t0
    return poisons
