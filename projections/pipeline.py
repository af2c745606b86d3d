"""Planned log chunks for a rebuild, optionally planned by worker processes.

Reading, decoding and the pure apply step need no graph state, so a rebuild
runs them in ``workers`` separate processes, each over its own position
range, while the main process applies the previous chunks to LMDB. Chunks
come back in log order as msgpack (a cheap, C-level round trip for tuples of
bytes, ints and dicts). ``workers=0`` plans in the calling process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from collections import deque
from pathlib import Path
from typing import Iterator

import msgspec

from events.log import EventLog

from .applier import Planned, plan_rows

__all__ = ["planned_chunks", "default_workers", "open_scan_log"]

log = logging.getLogger(__name__)
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode
_logs: dict[str, EventLog] = {}


def open_scan_log(log_path: str | Path) -> EventLog:
    """The log opened for one sequential scan: SQLite's page cache would only
    hold pages already read (the default is 256 MB of RSS for nothing)."""
    event_log = EventLog(log_path, readonly=True)
    event_log.db.execute("PRAGMA cache_size = -8192")
    return event_log


def _spawnable() -> bool:
    """Spawned processes re-import ``__main__`` by path: impossible from stdin or a REPL."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    return path is None or os.path.exists(path)


def default_workers() -> int:
    """One planner per spare core (at least one, at most three)."""
    return max(1, min(3, (os.cpu_count() or 2) - 1))


def _plan_range(log_path: str, start: int, end: int) -> bytes:
    """Worker task: plan positions ``start..end`` and return them as msgpack."""
    import gc

    gc.disable()  # short-lived, acyclic garbage; the collector only costs time here
    event_log = _logs.get(log_path)
    if event_log is None:
        event_log = _logs[log_path] = open_scan_log(log_path)
    rows = [row for batch in event_log.read_payloads(start, batch_size=end - start + 1,
                                                      to_position=end) for row in batch]
    planned = _encode(plan_rows(rows))
    gc.enable()
    return planned


def planned_chunks(log_path: Path, start: int, end: int, *, chunk: int = 10_000,
                   workers: int = 0) -> Iterator[list[Planned]]:
    """Yield planned entries for positions ``start..end`` in order, ``chunk`` at a time."""
    ranges = [(p, min(p + chunk - 1, end)) for p in range(start, end + 1, chunk)]
    if workers > 0 and not _spawnable():
        log.warning("planner processes unavailable (no importable __main__); planning in-process")
        workers = 0
    if workers <= 0:
        event_log = open_scan_log(log_path)
        try:
            for lo, hi in ranges:
                rows = [row for batch in event_log.read_payloads(lo, batch_size=hi - lo + 1,
                                                                 to_position=hi) for row in batch]
                yield plan_rows(rows)
        finally:
            event_log.close()
        return
    ctx = multiprocessing.get_context("spawn")
    pool = ctx.Pool(workers)
    try:
        pending: deque = deque()
        todo = iter(ranges)
        for lo, hi in todo:
            pending.append(pool.apply_async(_plan_range, (str(log_path), lo, hi)))
            if len(pending) >= workers * 2:
                break
        while pending:
            result = pending.popleft().get()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.apply_async(_plan_range, (str(log_path), *nxt)))
            yield _decode(result)
    finally:
        pool.terminate()
        pool.join()
