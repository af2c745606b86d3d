"""The immutable event log: one SQLite file, one writer, dense positions.

Invariants, each enforced by the database and checked by ``fleet verify``:

* positions are dense: a trigger refuses a row whose position is not the
  current maximum plus one, so commit order equals position order;
* ``event_id`` is unique forever: ``event_ids`` is keyed by it (16 packed
  bytes for UUIDs), and appends skip ids already present;
* rows are never updated or deleted: triggers refuse both;
* a hash chain links every row to the one before (``hash = blake2b(prev ||
  position || event_id || recorded_at || payload)``).

The file stays inspectable with the ``sqlite3`` shell: ``payload`` is the
event's JSON text as the producer sent it (upcasting happens on read).
sqlite-utils creates the tables and reads the quarantine; the triggers, the
append and the log's reads are plain SQL, the hot paths with no layer between.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import sqlite_utils

from .chain import GENESIS_HASH, Chained, RowChain, Tail, chain_hash, rechain
from .errors import DuplicateEvent, LogError, NotFound
from .logrows import Accepted, AppendResult, LogEntry, Rejected, VerifyReport, id_key, now_iso
from .logschema import create_tables
from .shipped import ShippedRow, check_chain

log = logging.getLogger(__name__)

__all__ = ["EventLog"]

_IN_CHUNK = 500  # ids per `IN (...)` look-up; under SQLite's variable limit


# Column order of an `Accepted` tuple, framed by the position and the writer's columns.
_INSERT_EVENT = ("INSERT INTO events (position, event_id, type, source, occurred_at, payload, subject,"
                 " traceparent, recorded_at, hash) VALUES (?,?,?,?,?,?,?,?,?,?)")
_ENTRY_COLUMNS = ("position, event_id, type, source, occurred_at, recorded_at, payload, subject,"
                  " traceparent")


class EventLog:
    """The append-only log in ``path``. One writer per file; readers may be many.

    ``sync="full"`` fsyncs the WAL on every commit, so an event acked to
    JetStream survives power loss; ``"normal"`` survives process crashes only.
    ``db`` is a ``sqlite_utils.Database`` on the log's one connection.
    """

    def __init__(self, path: str | Path, *, sync: str = "full", readonly: bool = False,
                 cache_kib: int = 262_144) -> None:
        self.path = Path(path)
        self.readonly = readonly
        if readonly:
            if not self.path.exists():
                raise NotFound(f"no log at {self.path} - run `fleet ingest` first or check --data-dir")
            conn = sqlite3.connect(
                f"file:{self.path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
            )
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'events'").fetchone() is None:
                conn.close()  # created but not yet initialised by its writer
                raise NotFound(f"the log at {self.path} has no events yet - run `fleet ingest` first")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn = conn
        self.db = sqlite_utils.Database(conn)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
        if not readonly:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {'FULL' if sync == 'full' else 'NORMAL'}")
            # Checkpoints run from `start_checkpoints()`' thread (the log
            # writer starts it), never inside a commit on the hot path.
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            create_tables(self.db)
        self._lock = threading.Lock()
        self._checkpoints: tuple[threading.Event, threading.Thread] | None = None

    # -- writing ---------------------------------------------------------

    @property
    def chain_tail(self) -> Tail:
        """The last row's position and hash (where the next append's chain starts)."""
        row = self._conn.execute(
            "SELECT position, hash FROM events ORDER BY position DESC LIMIT 1"
        ).fetchone()
        return Tail(row[0], row[1]) if row else Tail()

    def existing_keys(self, keys: Sequence[bytes]) -> set[bytes]:
        """The subset of id keys (see :func:`id_key`) already in the log."""
        found: set[bytes] = set()
        key_list = sorted(keys)
        for i in range(0, len(key_list), _IN_CHUNK):
            chunk = key_list[i : i + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            found.update(
                key for (key,) in self._conn.execute(
                    f"SELECT key FROM event_ids WHERE key IN ({marks})", chunk
                )
            )
        return found

    def append(
        self,
        accepted: Iterable[Accepted],
        rejected: Iterable[Rejected] = (),
        *,
        checkpoint: tuple[str, int] | None = None,
    ) -> AppendResult:
        """Append a batch in one transaction; ids already logged are skipped.

        ``rejected`` items go to the quarantine and ``checkpoint`` (consumer
        name, stream sequence) is stored in the same transaction, so a crash
        leaves all of it or none of it. (Ingest builds its rows ahead and
        calls :meth:`append_chained`.)
        """
        with self._lock:
            # Chained from the tail as it is now; _append_locked checks it again
            # under the database's write lock (another process may append).
            chain = RowChain(self.chain_tail, now_iso())
            for item in accepted:
                chain.add(id_key(item.event_id), item)  # the first occurrence of an id wins
            return self._append_locked(chain.chained(), list(rejected), checkpoint)

    def append_chained(
        self,
        chained: Chained | None,
        rejected: Iterable[Rejected] = (),
        *,
        checkpoint: tuple[str, int] | None = None,
    ) -> AppendResult:
        """Append rows built ahead (see :mod:`events.chain`) in one transaction.

        The rows go in as they are when ``chained.base`` is the log's tail
        under the write lock and none of their ids is logged yet; otherwise
        they are chained again from the real tail, less the ids already
        logged (counted as duplicates). ``None`` appends no event (a batch
        of quarantined input or a checkpoint alone).
        """
        with self._lock:
            return self._append_locked(chained, list(rejected), checkpoint)

    def _append_locked(
        self,
        chained: Chained | None,
        rejected: list[Rejected],
        checkpoint: tuple[str, int] | None,
    ) -> AppendResult:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # The tail under the write lock: another process (an operator's
                # CLI) may have appended since the rows were built.
                tail = self.chain_tail
                if chained is None:
                    chained = Chained(tail, now_iso(), [], [])
                elif chained.base != tail:
                    chained = rechain(chained, tail)
                duplicates = chained.duplicates
                if chained.id_rows and not self._insert_ids(sorted(chained.id_rows)):
                    # Some ids are logged already (rare: redeliveries are
                    # skipped by stream sequence before they get here).
                    conn.execute("ROLLBACK")
                    conn.execute("BEGIN IMMEDIATE")
                    tail = self.chain_tail
                    already = self.existing_keys([key for key, _ in chained.id_rows])
                    duplicates += len(already)
                    chained = rechain(chained, tail, already)
                    if chained.id_rows and not self._insert_ids(sorted(chained.id_rows)):
                        raise DuplicateEvent("an event id appeared in the log while appending")
                rows = chained.rows
                if rows:
                    conn.executemany(_INSERT_EVENT, rows)
                if rejected:
                    # In the append's transaction: no savepoint or table look-ups of Table.insert_all.
                    conn.executemany(
                        "INSERT INTO quarantine (received_at, reason, detail, subject, headers,"
                        " stream_seq, raw) VALUES (?,?,?,?,?,?,?)",
                        [(chained.recorded_at, r.reason, r.detail, r.subject, r.headers,
                          r.stream_seq, r.raw) for r in rejected],
                    )
                if checkpoint is not None:
                    conn.execute(
                        "INSERT INTO consumer_checkpoints VALUES (?, ?) ON CONFLICT(consumer)"
                        " DO UPDATE SET stream_seq = max(stream_seq, excluded.stream_seq)",
                        checkpoint,
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.IntegrityError as e:
            if "event_ids" in str(e):
                raise DuplicateEvent(f"an event id in this batch is already logged: {e}") from e
            raise LogError(f"append refused by the log: {e}") from e
        except sqlite3.OperationalError as e:
            raise LogError(f"append failed on {self.path}: {e}") from e
        head = chained.tail
        return AppendResult(len(rows), duplicates, len(rejected), head.position, head.hash)

    def append_shipped(self, rows: Sequence[ShippedRow], *, checkpoint: tuple[str, int] | None = None
                       ) -> AppendResult:
        """Append rows shipped from the primary's log as they are (a replica's only write).

        One transaction; every row must continue the tail (next position,
        chained hash) or none is appended and :class:`ChainBroken` says
        which row and why. Ids logged already are refused by the index
        (:class:`DuplicateEvent`): a replica's log is the primary's, row for row.
        ``checkpoint`` (consumer, stream sequence) is the primary's ingest
        checkpoint as of these rows, kept for a take-over.
        """
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    tail = check_chain(self.chain_tail, list(rows))
                    if rows:
                        conn.executemany("INSERT INTO event_ids VALUES (?,?)",
                                         [(id_key(r.event_id), r.position) for r in rows])
                        conn.executemany(_INSERT_EVENT, [r.row() for r in rows])
                    if checkpoint is not None:  # the primary's, for a take-over (README)
                        conn.execute(
                            "INSERT INTO consumer_checkpoints VALUES (?, ?) ON CONFLICT(consumer)"
                            " DO UPDATE SET stream_seq = max(stream_seq, excluded.stream_seq)",
                            checkpoint)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            except sqlite3.IntegrityError as e:
                raise DuplicateEvent(f"a shipped row's event id is already in {self.path}: {e}") from e
            except sqlite3.OperationalError as e:
                raise LogError(f"append of shipped rows failed on {self.path}: {e}") from e
        return AppendResult(len(rows), 0, 0, tail.position, tail.hash)

    def rows(self, from_position: int = 1, *, batch_size: int = 1_000,
             to_position: int | None = None) -> Iterator[list[tuple]]:
        """Whole rows (the insert's column order, ``hash`` last) from ``from_position`` on: what
        the shipper sends."""
        return self._pages("position, event_id, type, source, occurred_at, payload, subject,"
                           " traceparent, recorded_at, hash", from_position, to_position, batch_size)

    def _insert_ids(self, id_rows: list[tuple[bytes, int]]) -> bool:
        """Insert id rows unless present; True when every one was new."""
        before = self._conn.total_changes
        self._conn.executemany("INSERT OR IGNORE INTO event_ids VALUES (?,?)", id_rows)
        return self._conn.total_changes - before == len(id_rows)

    def checkpoint(self, mode: str = "PASSIVE") -> None:
        """Copy WAL pages into the database file (run off the commit path)."""
        self._conn.execute(f"PRAGMA wal_checkpoint({mode})")

    def start_checkpoints(self, every_secs: float = 1.0) -> None:
        """Checkpoint the WAL from a thread of its own every ``every_secs``.

        Automatic checkpoints are off so that no commit pays for one; without
        this thread the WAL would grow for as long as the writer runs. A
        PASSIVE checkpoint never blocks the writer, and once one has caught
        up the next commit starts the WAL over from its beginning.
        """
        if self.readonly or self._checkpoints is not None:
            return
        stop = threading.Event()
        thread = threading.Thread(target=self._checkpoint_loop, args=(stop, every_secs),
                                  name="log-checkpoints", daemon=True)
        self._checkpoints = (stop, thread)
        thread.start()

    def _checkpoint_loop(self, stop: threading.Event, every_secs: float) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 1000")
            while not stop.wait(every_secs):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                except sqlite3.Error as e:  # e.g. a busy database: the next round catches up
                    log.warning("log checkpoint failed", extra={"path": str(self.path), "error": repr(e)})
        finally:
            conn.close()

    def head_and_checkpoint(self, consumer: str) -> tuple[int, int]:
        """The head and ``consumer``'s checkpoint read in one snapshot: every event the
        checkpoint covers is at or below that head."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                head = self._conn.execute("SELECT ifnull(max(position), 0) FROM events").fetchone()[0]
                return head, self.consumer_checkpoint(consumer)
            finally:
                self._conn.execute("COMMIT")

    def consumer_checkpoint(self, consumer: str) -> int:
        """The highest stream sequence committed for ``consumer`` (0 if none)."""
        row = self._conn.execute(
            "SELECT stream_seq FROM consumer_checkpoints WHERE consumer = ?", (consumer,)
        ).fetchone()
        return row[0] if row else 0

    # -- reading ---------------------------------------------------------

    @property
    def head(self) -> int:
        """The position of the last committed event (0 for an empty log)."""
        row = self._conn.execute("SELECT max(position) FROM events").fetchone()
        return row[0] or 0

    def read(self, from_position: int = 1, *, batch_size: int = 10_000, to_position: int | None = None
             ) -> Iterator[list[LogEntry]]:
        """Yield committed entries from ``from_position`` on, in batches, in order."""
        for rows in self._pages(_ENTRY_COLUMNS, from_position, to_position, batch_size):
            yield [LogEntry(*row) for row in rows]

    def read_payloads(self, from_position: int = 1, *, batch_size: int = 10_000,
                      to_position: int | None = None) -> Iterator[list[tuple[int, str]]]:
        """Like :meth:`read` but only ``(position, payload)``: the fast path for replay."""
        return self._pages("position, payload", from_position, to_position, batch_size)

    def _pages(self, columns: str, from_position: int, to_position: int | None, batch_size: int
               ) -> Iterator[list[tuple]]:
        """Rows of ``columns`` (position first) in position order, one page per query."""
        position = max(1, from_position)
        stop = to_position if to_position is not None else 1 << 62
        query = (f"SELECT {columns} FROM events WHERE position >= ? AND position <= ?"
                 " ORDER BY position LIMIT ?")
        while position <= stop:
            rows = self._conn.execute(query, (position, stop, batch_size)).fetchall()
            if not rows:
                return
            yield rows
            position = rows[-1][0] + 1

    def traceparents(self, from_position: int, to_position: int) -> dict[int, str]:
        """W3C trace contexts of the traced events in a position range."""
        return dict(self._conn.execute(
            "SELECT position, traceparent FROM events WHERE traceparent IS NOT NULL"
            " AND position >= ? AND position <= ?", (from_position, to_position)))

    def causes(self, positions: list[int]) -> tuple[dict[int, tuple[str, str]], str]:
        """``position -> (event_id, occurred_at)`` for sorted log ``positions``, and the
        ``recorded_at`` of the first; :class:`NotFound` when one is not in the log."""
        found: dict[int, tuple[str, str]] = {}
        recorded_at = ""
        for i in range(0, len(positions), _IN_CHUNK):
            chunk = positions[i:i + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            for position, event_id, occurred_at, recorded in self._conn.execute(
                "SELECT position, event_id, occurred_at, recorded_at FROM events"
                f" WHERE position IN ({marks})", chunk,
            ):
                found[position] = (event_id, occurred_at)
                if position == positions[0]:
                    recorded_at = recorded
        missing = len(positions) - len(found)
        if missing:
            raise NotFound(f"{missing} causing log positions are not in {self.path}"
                           f" (first asked: {positions[0]}) - is this the projection's log?")
        return found, recorded_at

    def get(self, ref: int | str) -> LogEntry:
        """One entry by position (int or digits) or by event id."""
        # ASCII digits only: isdigit() admits "²" and int() reads "١٢"; a longer number is no position
        if isinstance(ref, int) or (isinstance(ref, str) and ref.isascii() and ref.isdecimal()
                                    and len(ref) <= 19):
            row = self._conn.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM events WHERE position = ?", (int(ref),)
            ).fetchone()
        else:
            row = self._conn.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM events WHERE position ="
                " (SELECT position FROM event_ids WHERE key = ?)",
                (id_key(ref),),
            ).fetchone()
        if row is None:
            raise NotFound(f"no event at {ref!r} in {self.path} (head is {self.head})")
        return LogEntry(*row)

    def tail(self, n: int = 10) -> list[LogEntry]:
        """The last ``n`` entries, oldest first."""
        rows = self._conn.execute(
            f"SELECT {_ENTRY_COLUMNS} FROM events ORDER BY position DESC LIMIT ?", (n,)
        ).fetchall()
        return [LogEntry(*row) for row in reversed(rows)]

    def stats(self) -> dict:
        """Count, head, events by type and by source, quarantine by status, size on disk."""
        conn = self._conn
        count, head = conn.execute("SELECT count(*), ifnull(max(position), 0) FROM events").fetchone()
        by_type = dict(conn.execute("SELECT type, count(*) FROM events GROUP BY type ORDER BY 2 DESC"))
        by_source = dict(conn.execute("SELECT source, count(*) FROM events GROUP BY source ORDER BY 2 DESC"))
        quarantine = dict(conn.execute("SELECT status, count(*) FROM quarantine GROUP BY status"))
        size = sum(p.stat().st_size for p in self.path.parent.glob(self.path.name + "*") if p.is_file())
        return {
            "path": str(self.path),
            "count": count,
            "head": head,
            "by_type": by_type,
            "by_source": by_source,
            "quarantine": quarantine,
            "size_bytes": size,
        }

    def verify(self, *, batch_size: int = 50_000, progress: Callable[[int, int], None] | None = None
               ) -> VerifyReport:
        """Recompute the hash chain and check density and the id index."""
        problems: list[str] = []
        prev = GENESIS_HASH
        expected = 1
        head = self.head
        for batch in _batches(self._conn.execute(
            "SELECT position, event_id, recorded_at, payload, hash FROM events ORDER BY position"
        ), batch_size):
            for position, event_id, recorded_at, payload, stored in batch:
                if position != expected:
                    problems.append(f"gap: expected position {expected}, found {position}")
                    expected = position
                prev = chain_hash(prev, position, event_id, recorded_at.encode(), payload)
                if prev != stored:
                    problems.append(
                        f"hash mismatch at position {position} (event {event_id}): the row or one"
                        " before it was altered"
                    )
                    prev = stored
                expected += 1
                if len(problems) >= 100:
                    break
            if progress:
                progress(expected - 1, head)
            if len(problems) >= 100:
                problems.append("stopped after 100 problems")
                break
        indexed = self._conn.execute("SELECT count(*) FROM event_ids").fetchone()[0]
        if indexed != expected - 1 and len(problems) < 100:
            problems.append(f"id index holds {indexed} ids for {expected - 1} events")
        return VerifyReport(checked=expected - 1, head=head, problems=tuple(problems), head_hash=prev.hex())

    # -- quarantine ------------------------------------------------------

    def quarantine_list(self, *, status: str | None = "open", limit: int = 100, after_id: int = 0
                        ) -> list[dict]:
        """Quarantined items (without raw bytes), oldest first."""
        where, params = "id > ?", [after_id]
        if status:
            where += " AND status = ?"
            params.append(status)
        return list(self.db["quarantine"].rows_where(
            where, params, order_by="id", limit=int(limit),
            select="id, received_at, reason, detail, subject, stream_seq, length(raw), status,"
                   " resolved_at, resolution",
        ))

    def quarantine_get(self, item_id: int) -> dict:
        """One quarantined item with its raw bytes."""
        try:
            return self.db["quarantine"].get(item_id)
        except sqlite_utils.db.NotFoundError as e:
            raise NotFound(f"no quarantined item {item_id} - `fleet quarantine list` shows them") from e

    def quarantine_resolve(self, item_id: int, resolution: str) -> None:
        """Mark a quarantined item handled (``resolution`` says how)."""
        with self._lock:
            # One statement, a no-op for an unknown id: Table.update() reads first and raises.
            self._conn.execute(
                "UPDATE quarantine SET status = 'resolved', resolved_at = ?, resolution = ?"
                " WHERE id = ?",
                (now_iso(), resolution, item_id),
            )

    def quarantine_count(self, status: str = "open") -> int:
        """How many quarantined items have ``status``."""
        return self.db["quarantine"].count_where("status = ?", [status])

    def close(self) -> None:
        """Checkpoint (when writing) and close the connection."""
        if self._checkpoints is not None:
            stop, thread = self._checkpoints
            stop.set()
            thread.join()
            self._checkpoints = None
        if not self.readonly:
            try:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.OperationalError:
                pass
        self._conn.close()

    def __enter__(self) -> "EventLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _batches(cursor: sqlite3.Cursor, size: int) -> Iterator[list[tuple]]:
    while True:
        rows = cursor.fetchmany(size)
        if not rows:
            return
        yield rows
