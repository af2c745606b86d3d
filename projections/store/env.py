"""LMDB environments of projection versions: layout, sharing, growth.

One environment per version directory. LMDB forbids opening the same
environment twice in one process, so :func:`open_env` hands out one shared
handle per path. The map starts small and doubles whenever a write hits
``MapFullError`` (:meth:`Env.grow`); readers in other processes adopt the new
size when LMDB tells them (``MapResizedError``).

Sub-databases (names are stable: operators may inspect them with
``mdb_stat -a``):

===================  =========================================================
``node:<Type>``      node key -> msgpack properties, one table per node type
``out:<EDGE>``       dupsort, source key -> target keys, one table per edge type
``in:<EDGE>``        dupsort, target key -> source keys
``eprops``           source + edge code + target -> msgpack edge properties
``idx``              dupsort, property index key -> node keys
``lookup``           lookup key -> node key (iids, paths; see ``indexing``)
``tomb``             keys of deleted nodes
``meta``             checkpoint, outbox sequence, counters, rebuild progress
``poison``           position -> why the live projector skipped that event
``outbox``           change sequence -> msgpack graph-change record
===================  =========================================================

Deferred fsync (:func:`defer_sync`, the projector processes' choice): each
commit then skips LMDB's fsync and a background thread flushes every
environment written since its last flush, every ``secs`` seconds. A live
commit of a few events dirties a hundred-odd B-tree pages; fsyncing them
each time was ~3 ms per commit and ~100 MB/s of disk writes at 2,000
events/s, against a few MB/s once the page cache coalesces the hot pages.
A process crash loses nothing (the pages are in the page cache); a machine
crash may lose the last second and, since LMDB then cannot order its
writes, may corrupt the file. So a version written this way carries an
``unsynced`` marker holding the boot id while it is open for writing
(removed after the last flush when the writer closes it), and opening a
version whose marker names another boot raises
:class:`~projections.errors.VersionDamaged`: the projector sets such a
version aside and rebuilds it from the log, which it can always do.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import lmdb
from opentelemetry import metrics

from projections.errors import StoreError, UnknownVersion, VersionDamaged
from projections.model.ontology import EDGE_TYPES, NODE_TYPES
from projections.store.files import fsync_dir, write_atomic

__all__ = ["Env", "open_env", "close_env", "defer_sync", "sync_mode", "DEFAULT_MAP_SIZE", "UNSYNCED"]

log = logging.getLogger(__name__)
_sync_ms = metrics.get_meter(__name__).create_histogram(
    "fleet.projection.sync.duration", unit="ms",
    description="Flushing a projection environment written with deferred fsync")

DEFAULT_MAP_SIZE = 1 << 30
_MAX_DBS = 128

_lock = threading.Lock()
_open: dict[str, "Env"] = {}
_libc = ctypes.CDLL(None, use_errno=True)
_MADV_DONTNEED = 4
#: a version's marker file while a deferred-fsync writer has it open
UNSYNCED = "unsynced"
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_defer_secs = 0.0  # 0: LMDB fsyncs every commit (see defer_sync)
_syncer: threading.Thread | None = None


def boot_id() -> str | None:
    """This boot of the machine (Linux), None where the system does not say."""
    try:
        return _BOOT_ID.read_text().strip() or None
    except OSError:
        return None


def defer_sync(secs: float) -> bool:
    """From now on, open environments with deferred fsync, flushed every ``secs`` seconds.

    For processes that write projections live (``0`` keeps an fsync per
    commit). Environments already open keep their mode. Without a boot id
    to tell a machine crash from a process crash, fsync stays per commit;
    returns whether deferral is on.
    """
    global _defer_secs, _syncer
    if secs < 0:
        raise ValueError(f"a sync interval cannot be negative, got {secs}")
    if secs and boot_id() is None:
        log.warning("no boot id on this system: projections keep an fsync per commit")
        secs = 0.0
    _defer_secs = secs
    if secs and _syncer is None:
        _syncer = threading.Thread(target=_sync_loop, name="lmdb-sync", daemon=True)
        _syncer.start()
    return bool(secs)


def sync_mode() -> str:
    """How this process's projection commits reach the disk (for health output)."""
    return f"every {_defer_secs:g} s (deferred)" if _defer_secs else "every commit"


def _sync_loop() -> None:
    while True:
        time.sleep(_defer_secs or 1.0)
        with _lock:
            for env in [env for env in _open.values() if env.dirty]:
                try:
                    env.flush()
                except Exception:  # noqa: BLE001 - the thread must go on; the marker stays
                    env.dirty = True
                    log.exception("flushing a projection failed; retrying at the next interval",
                                  extra={"path": str(env.path)})


def _check_marker(path: Path) -> None:
    """Raise :class:`VersionDamaged` if a deferred writer had ``path`` open when the machine went down."""
    try:
        marker = json.loads((path / UNSYNCED).read_text())
    except FileNotFoundError:
        return
    except (OSError, ValueError):
        marker = {}
    if marker.get("boot_id") != boot_id():
        raise VersionDamaged(
            f"{path} was being written without an fsync per commit (by pid {marker.get('pid', '?')})"
            " when the machine went down: it may be corrupt. The projector (`fleet worker` or"
            " `fleet project`) sets it aside and rebuilds it from the log."
        )


class _Gate:
    """Many transactions at once, or one map resize: LMDB remaps the file on
    resize, which must not happen under another thread's open transaction.

    :meth:`enter` and :meth:`leave` are plain methods, not a context
    manager: a query's whole read path costs a few microseconds and a
    generator-based ``with`` would be a good part of it. For the same reason
    they hold the condition's lock directly (a C-level ``with``) rather than
    the condition, whose ``__enter__`` and ``__exit__`` are Python frames:
    measured right after a Kùzu query, with the CPU caches cold, that took
    2.3–2.4 µs off a node lookup of ~34.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._active = 0
        self._resizing = False
        self._resizers_waiting = 0

    def enter(self) -> None:
        """Register one transaction (waits while a resize runs)."""
        with self._lock:
            while self._resizing:
                self._cond.wait()
            self._active += 1

    def leave(self) -> None:
        """The transaction registered by :meth:`enter` has ended."""
        with self._lock:
            self._active -= 1
            if not self._active and self._resizers_waiting:
                self._cond.notify_all()

    def idle(self) -> bool:
        """Whether no transaction of this process is open (a hint: it may change right after)."""
        with self._cond:
            return not self._active and not self._resizing

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """No transaction of this process is open while the body runs."""
        with self._cond:
            self._resizers_waiting += 1
            try:
                while self._resizing or self._active:
                    self._cond.wait()
            finally:
                self._resizers_waiting -= 1
            self._resizing = True
        try:
            yield
        finally:
            with self._cond:
                self._resizing = False
                self._cond.notify_all()


class Env:
    """A shared LMDB environment with every sub-database opened."""

    def __init__(self, path: Path, map_size: int) -> None:
        self.path = path
        self.users = 0
        self.gate = _Gate()
        #: commits skip the fsync; :attr:`dirty` says one happened since the last flush
        self.deferred = _defer_secs > 0
        self.dirty = False
        self._marked = False
        _check_marker(path)
        if self.deferred and not (path / "data.mdb").exists():
            self._mark()  # creating the file is a write too
        try:
            self.env = lmdb.open(
                str(path), map_size=map_size, max_dbs=_MAX_DBS, subdir=True, create=True,
                metasync=False, sync=not self.deferred, readahead=False, max_readers=512,
                lock=True,
            )
        except lmdb.Error as e:
            raise StoreError(f"cannot open LMDB environment {path}: {e}") from e
        # py-lmdb recycles read transactions instead of committing them, which
        # would discard table handles opened in one: open them in a write one.
        with self.env.begin(write=True) as txn:
            self._open_tables(txn, create=True)
        #: tables whose content is the graph (the digest covers exactly these)
        self.graph_tables = (
            [(f"node:{t.name}", self.nodes[t.code]) for t in NODE_TYPES]
            + [(f"out:{e.name}", self.out[e.code]) for e in EDGE_TYPES]
            + [(f"in:{e.name}", self.inn[e.code]) for e in EDGE_TYPES]
            + [("eprops", self.eprops), ("idx", self.idx), ("lookup", self.lookup),
               ("tomb", self.tomb)]
        )

    def _open_tables(self, txn: lmdb.Transaction, create: bool) -> None:
        def table(name: bytes, dupsort: bool = False):
            return self.env.open_db(name, txn=txn, dupsort=dupsort, create=create)

        self.nodes = {t.code: table(b"node:" + t.name.encode()) for t in NODE_TYPES}
        self.out = {e.code: table(b"out:" + e.name.encode(), True) for e in EDGE_TYPES}
        self.inn = {e.code: table(b"in:" + e.name.encode(), True) for e in EDGE_TYPES}
        self.eprops = table(b"eprops")
        self.idx = table(b"idx", True)
        self.lookup = table(b"lookup")
        self.tomb = table(b"tomb")
        self.meta = table(b"meta")
        self.poison = table(b"poison")
        self.outbox = table(b"outbox")

    def _mark(self) -> None:
        """Write the ``unsynced`` marker (durably) before the first commit without fsync."""
        write_atomic(self.path / UNSYNCED,
                     json.dumps({"boot_id": boot_id(), "pid": os.getpid(), "since": time.time()}))
        self._marked = True

    def flush(self) -> None:
        """fsync what the commits since the last flush wrote (deferred mode)."""
        self.dirty = False
        started = time.perf_counter()
        self.env.sync(True)
        _sync_ms.record((time.perf_counter() - started) * 1000, {"path": self.path.name})

    def close(self) -> None:
        """Flush, drop the marker (everything is on disk now) and close."""
        if self._marked:
            self.flush()
            (self.path / UNSYNCED).unlink(missing_ok=True)
            fsync_dir(self.path)
        self.env.close()

    def grow(self) -> int:
        """Double the map size; waits until no transaction of this process is open."""
        with self.gate.exclusive():
            size = self.env.info()["map_size"] * 2
            self.env.set_mapsize(size)
        return size

    def release_pages(self) -> None:
        """Drop this process's mapping of the data file's pages (they stay in the page cache).

        A rebuild touches every page of a growing file; without this the
        mapped pages count towards the process's RSS until it exits. Safe at
        any time: a later access maps the page again from the page cache.
        Linux only (the map is found in /proc/self/maps); a no-op elsewhere.
        """
        data = os.path.realpath(self.path / "data.mdb")
        try:
            with open("/proc/self/maps") as maps:
                ranges = [line.split()[0] for line in maps if line.rstrip().endswith(data)]
        except OSError:
            return
        for span in ranges:
            start, end = (int(x, 16) for x in span.split("-"))
            _libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_DONTNEED)

    def _adopt_size(self) -> None:
        with self.gate.exclusive():
            self.env.set_mapsize(0)

    def _begin(self, write: bool) -> lmdb.Transaction:
        """A transaction registered with the gate; adopts a map grown by another process."""
        while True:
            self.gate.enter()
            try:
                return self.env.begin(write=write, buffers=False)
            except lmdb.MapResizedError:
                self.gate.leave()
            except BaseException:
                self.gate.leave()
                raise
            self._adopt_size()

    def _end(self, txn: lmdb.Transaction) -> None:
        """Abort ``txn`` (a no-op once committed) and release its place in the gate."""
        try:
            txn.abort()
        finally:
            self.gate.leave()

    def begin_read(self) -> lmdb.Transaction:
        """A read-only snapshot. End it with :meth:`end_read`.

        :meth:`_begin` and :meth:`_end` inlined: this pair is on every query.
        """
        gate = self.gate
        gate.enter()
        try:
            return self.env.begin(buffers=False)
        except lmdb.MapResizedError:
            gate.leave()
        except BaseException:
            gate.leave()
            raise
        self._adopt_size()
        return self._begin(write=False)

    def end_read(self, txn: lmdb.Transaction) -> None:
        """Release a snapshot from :meth:`begin_read`."""
        try:
            txn.abort()
        finally:
            self.gate.leave()

    @contextmanager
    def read(self) -> Iterator[lmdb.Transaction]:
        """A read-only snapshot for the body of a ``with``."""
        txn = self._begin(write=False)
        try:
            yield txn
        finally:
            self._end(txn)

    @contextmanager
    def write(self) -> Iterator[lmdb.Transaction]:
        """A write transaction, aborted unless the body commits it.

        LMDB serialises writers across processes; within this process the
        transaction holds the gate so that no resize can happen under it.
        """
        if self.deferred and not self._marked:
            self._mark()
        txn = self._begin(write=True)
        try:
            yield txn
        finally:
            self._end(txn)
            self.dirty = self.deferred


def open_env(path: Path, *, create: bool = False, map_size: int = DEFAULT_MAP_SIZE) -> Env:
    """The process-wide handle of the environment in ``path`` (refcounted)."""
    path = Path(path)
    key = os.path.realpath(path)
    with _lock:
        env = _open.get(key)
        if env is None:
            if not (path / "data.mdb").exists():
                if not create:
                    raise UnknownVersion(f"no projection version at {path}")
                path.mkdir(parents=True, exist_ok=True)
            env = _open[key] = Env(path, map_size)
        env.users += 1
        return env


def close_env(env: Env) -> None:
    """Release one user of ``env``; the last one closes it."""
    with _lock:
        env.users -= 1
        if env.users <= 0:
            _open.pop(os.path.realpath(env.path), None)
            env.close()
