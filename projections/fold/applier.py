"""Apply batches of log entries to a version's store: exactly once, poison-aware.

:func:`plan_rows` decodes log payloads and runs the pure apply step (cheap to
ship to another process); :class:`Applier` folds planned entries into an
overlay and writes the result with the checkpoint in one LMDB transaction.

* **Exactly once**: the transaction re-reads the checkpoint and drops
  entries at or below it, so a batch replayed after a crash is a no-op.
* **Poison**: an entry that cannot be decoded or applied is, in live mode,
  recorded in the ``poison`` table with its position and reason and skipped
  (the batch is rebuilt without it, as its mutations may be half applied);
  in strict mode (rebuilds) the entries before it are committed and
  :class:`~projections.errors.PoisonEvent` is raised.
* **Growth**: ``MapFullError`` aborts the transaction, doubles the map and
  retries.
"""

from __future__ import annotations

import gc
import logging
import mmap
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import lmdb
import msgspec

from events.codec import decode_event
from events.errors import FleetError, InvalidEvent
from projections.changes.outbox import append_changes
from projections.errors import PoisonEvent, StoreError
from projections.fold.apply import apply
from projections.fold.overlay import Overlay
from projections.fold.writes import build_writeset
from projections.store.graph import CHECKPOINT, GraphStore

__all__ = ["Planned", "plan_rows", "Applier", "BatchResult", "gc_paused", "mapped_bytes",
           "MAPPED_BUDGET", "data_file_bytes"]

log = logging.getLogger(__name__)

#: ``(position, mutations)``, or ``(position, None, event_id, event_type, reason)`` for poison
Planned = tuple

# The log holds accepted events only; the size limit guards ingestion, not replay.
_NO_LIMIT = 1 << 40
#: Mapped file pages a bulk pass keeps before it unmaps the LMDB file. Reads
#: land all over the file and the kernel maps up to 16 neighbouring pages per
#: fault: unmapped every few thousand events, the file alone made 300 MB of
#: RSS at a million events; unmapped more often, re-faulting costs time.
MAPPED_BUDGET = 128 << 20
_peek_decoder = msgspec.json.Decoder(dict)


def _peek(payload: str | bytes) -> tuple[str | None, str | None]:
    try:
        data = _peek_decoder.decode(payload)
    except msgspec.DecodeError:
        return None, None
    event_id, event_type = data.get("event_id"), data.get("type")
    return (event_id if isinstance(event_id, str) else None,
            event_type if isinstance(event_type, str) else None)


def plan_rows(rows: Sequence[tuple[int, str | bytes]]) -> list[Planned]:
    """Decode and apply each ``(position, payload)``; failures become poison markers."""
    with gc_paused():
        return _plan(rows)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic collector: a batch allocates hundreds of thousands of
    acyclic objects, and collector passes over them cost up to half the time
    (or more, over a large heap) while freeing nothing."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _plan(rows: Sequence[tuple[int, str | bytes]]) -> list[Planned]:
    out: list[Planned] = []
    append = out.append
    for position, payload in rows:
        try:
            event = decode_event(payload, max_bytes=_NO_LIMIT)
        except InvalidEvent as e:
            event_id, event_type = _peek(payload)
            append((position, None, event_id, event_type, str(e)))
            continue
        try:
            append((position, apply(event)))
        except Exception as e:  # noqa: BLE001 - any failure of one event is that event's poison
            append((position, None, event.event_id, event.__struct_config__.tag,
                    f"{type(e).__name__}: {e}"))
    return out


def mapped_bytes() -> int:
    """This process's resident file-backed memory (the LMDB map, mostly); 0 if unknown."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[2]) * mmap.PAGESIZE
    except (OSError, ValueError, IndexError):
        return 0


def data_file_bytes(store: GraphStore) -> int:
    """The size of the store's data file (0 if unknown)."""
    try:
        return os.stat(store.path / "data.mdb").st_size
    except OSError:
        return 0


@dataclass
class BatchResult:
    """What one :meth:`Applier.apply` did."""

    checkpoint: int = 0
    applied: int = 0
    poisoned: list[PoisonEvent] = field(default_factory=list)
    outbox: int = 0
    seconds: float = 0.0


class Applier:
    """Applies planned entries to ``store`` in batches.

    ``precise`` and ``outbox`` go together for an active version (change
    records are exact and written); ``strict`` stops at the first poison.
    ``describe(position)`` names the event at a position for poison raised
    while applying (``plan_rows`` names the ones it catches itself).
    """

    def __init__(self, store: GraphStore, *, precise: bool, strict: bool, outbox: bool,
                 describe: Callable[[int], tuple[str | None, str | None]] | None = None,
                 release_pages: bool = False) -> None:
        self.store = store
        self.precise = precise
        self.strict = strict
        self.outbox = outbox
        self.describe = describe
        #: unmap the data file's pages between phases (bulk batches touch most of them)
        self.release_pages = release_pages

    def apply(self, planned: Sequence[Planned]) -> BatchResult:
        """Apply ``planned`` (consecutive positions) in one transaction."""
        with gc_paused():
            return self._apply(planned)

    def _apply(self, planned: Sequence[Planned]) -> BatchResult:
        started = time.perf_counter()
        skip: dict[int, PoisonEvent] = {}
        items = list(planned)
        stop: PoisonEvent | None = None
        while True:
            try:
                result = self._attempt(items, skip)
            except _Poisoned as p:
                poison = p.poison or self._named(p.position, p.reason)
                if self.strict:
                    items = [it for it in items if it[0] < p.position]
                    stop = poison
                else:
                    skip[p.position] = poison
                continue
            except lmdb.MapFullError:
                size = self.store.env.grow()
                log.info("projection map grown", extra={"path": str(self.store.path), "map_size": size})
                continue
            except lmdb.BadValsizeError as e:
                # A key or value LMDB cannot hold: some event's, so find which.
                result = self._one_by_one(items, skip, e)
            except lmdb.Error as e:
                raise StoreError(f"LMDB failed writing {self.store.path}: {e}") from e
            except FleetError:
                raise
            except Exception as e:  # noqa: BLE001 - raised writing the batch, not by one event
                result = self._one_by_one(items, skip, e)
            break
        result.seconds = time.perf_counter() - started
        if stop is not None:
            raise stop
        return result

    def _one_by_one(self, items: list[Planned], skip: dict[int, PoisonEvent], error: Exception
                    ) -> BatchResult:
        """Apply a batch whose write failed one event per transaction: the event the
        failure follows is poison like any other, wherever in the step it was raised."""
        if len(items) == 1:
            position = items[0][0]
            if items[0][1] is None:  # no event's work in it: the failure is the store's
                raise StoreError(f"writing {self.store.path} failed at position {position}:"
                                 f" {type(error).__name__}: {error}") from error
            poison = self._named(position, f"{type(error).__name__}: {error}")
            if self.strict:
                raise poison from error
            return self._apply([(position, None, poison.event_id, poison.event_type, poison.reason)])
        log.warning("a batch failed to write; applying its events one by one to find the cause",
                    extra={"path": str(self.store.path), "first": items[0][0], "error": repr(error)})
        total = BatchResult()
        for item in items:
            one = skip.get(item[0])
            part = self._apply([item] if one is None else [(item[0], None, one.event_id,
                                                             one.event_type, one.reason)])
            total.checkpoint = max(total.checkpoint, part.checkpoint)
            total.applied += part.applied
            total.outbox += part.outbox
            total.poisoned.extend(part.poisoned)
        return total

    def _named(self, position: int, reason: str) -> PoisonEvent:
        event_id = event_type = None
        if self.describe is not None:
            try:
                event_id, event_type = self.describe(position)
            except Exception:  # noqa: BLE001 - naming is best effort
                pass
        return PoisonEvent(position, event_id, event_type, reason)

    def _attempt(self, items: list[Planned], skip: dict[int, PoisonEvent]) -> BatchResult:
        store = self.store
        result = BatchResult()
        with store.env.write() as txn:
            checkpoint = store.meta_int(txn, CHECKPOINT)
            result.checkpoint = checkpoint
            items = [it for it in items if it[0] > checkpoint]
            if not items:
                return result
            if items[0][0] != checkpoint + 1:
                raise StoreError(
                    f"{store.path} is at position {checkpoint} but the batch starts at"
                    f" {items[0][0]} - entries in between are missing"
                )
            overlay = Overlay(store.reader(txn), precise=self.precise)
            poisons = []
            # Unmapping pays off once the file outgrows the budget; before, it only costs.
            release = self.release_pages and data_file_bytes(store) > MAPPED_BUDGET
            for n, item in enumerate(items):
                if release and n & 127 == 127 and mapped_bytes() > MAPPED_BUDGET:
                    store.env.release_pages()
                position = item[0]
                if position in skip:
                    poisons.append(skip[position])
                    continue
                mutations = item[1]
                if mutations is None:
                    if item[2] is None:  # undecodable: the log row still knows its id and type
                        poison = self._named(position, item[4])
                    else:
                        poison = PoisonEvent(position, item[2], item[3], item[4])
                    if self.strict:
                        raise _Poisoned(position, item[4], poison)
                    poisons.append(poison)
                    continue
                try:
                    overlay.apply(mutations, position)
                except Exception as e:  # noqa: BLE001 - see module docstring
                    raise _Poisoned(position, f"{type(e).__name__}: {e}") from e
            if release:
                store.env.release_pages()
            ws = build_writeset(overlay)
            del overlay  # free the batch's state before LMDB allocates its dirty pages
            last = items[-1][0]
            store.write(
                txn, ws, checkpoint=last, release_pages=release,
                poisons=[(p.position, {"event_id": p.event_id, "type": p.event_type,
                                       "reason": p.reason, "at": time.time()}) for p in poisons],
            )
            if self.outbox:
                result.outbox = append_changes(store, txn, ws.changes)
            if release:
                store.env.release_pages()
            txn.commit()
        if release:
            store.env.release_pages()
        store.tombs.update(ws.tombs)
        result.checkpoint = last
        result.applied = len(items) - len(poisons)
        result.poisoned = poisons
        return result


class _Poisoned(Exception):
    def __init__(self, position: int, reason: str, poison: PoisonEvent | None = None) -> None:
        super().__init__(reason)
        self.position = position
        self.reason = reason
        self.poison = poison
