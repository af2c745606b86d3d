"""The log's single writer: append prepared batches, one transaction each.

The ingest worker validates messages as they arrive (in its receiving
process) into a :class:`PreparedBatch`, with the log rows and their hash
chain already built from the tail it expects (:mod:`events.chain`); a
writer appends it to the log with the consumer checkpoint in one SQLite
transaction, after checking that guess. Two implementations of
one seam:

* :class:`BatchWriter` runs in the caller's process (a thread of the ingest
  worker, or tests);
* :class:`WriterProcess` runs a :class:`BatchWriter` in a child process, so
  that SQLite work uses the second core instead of competing with the NATS
  receive loop for the GIL. Batches cross a pipe as msgpack.

Both return a :class:`CommitResult` once the transaction has committed.
A writer holds a lock file beside the log (``log.db.<consumer>.lock``) for
as long as it is open: a second ingest worker for the same log and
consumer stops at start with :class:`~events.errors.LogBusy`.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import msgspec

from events.chain import Chained, Tail
from events.errors import LogBusy, LogError
from events.log import EventLog
from events.logrows import Rejected
from projections.errors import StoreBusy
from projections.store.lock import WriterLock

__all__ = ["BatchWriter", "CommitResult", "PreparedBatch", "WriterProcess"]


class PreparedBatch(msgspec.Struct, array_like=True):
    """Validated input of one commit: chained event rows, quarantine rows, checkpoint."""

    chained: Chained | None = None  # None: no event to append
    rejected: list[Rejected] = msgspec.field(default_factory=list)
    top_seq: int = 0  # the highest stream sequence the batch covers
    skipped: int = 0  # redeliveries of sequences already committed, dropped before the writer


class CommitResult(msgspec.Struct, array_like=True):
    """What one batch commit did; ``head`` is the log position after it."""

    appended: int
    duplicates: int
    quarantined: int
    head: int
    head_hash: bytes

    @property
    def tail(self) -> Tail:
        """Where the next batch's chain starts."""
        return Tail(self.head, self.head_hash)


@dataclass
class BatchWriter:
    """Appends prepared batches to ``event_log`` with the consumer's checkpoint."""

    event_log: EventLog
    consumer: str

    def __post_init__(self) -> None:
        # One writer per log and consumer: a second one (`fleet ingest` run by hand beside
        # the fleet's) would pull from the same durable, and each one's AckPolicy.ALL acks
        # would cover the other's uncommitted deliveries.
        path = self.event_log.path
        try:
            self._lock = WriterLock(path.parent, what=f"ingest consumer {self.consumer!r} of {path}",
                                    name=f"{path.name}.{self.consumer}.lock").acquire()
        except StoreBusy as e:
            self.event_log.close()
            raise LogBusy(f"{e}: run one ingest worker per log") from None
        self.committed_seq = self.event_log.consumer_checkpoint(self.consumer)
        self.tail = self.event_log.chain_tail
        self.event_log.start_checkpoints()

    def commit(self, batch: PreparedBatch) -> CommitResult:
        """Append ``batch`` in one transaction and move the checkpoint to its top sequence."""
        top = max(batch.top_seq, self.committed_seq)
        result = self.event_log.append_chained(batch.chained, batch.rejected,
                                               checkpoint=(self.consumer, top))
        self.committed_seq = top
        committed = CommitResult(result.appended, result.duplicates + batch.skipped,
                                 result.quarantined, result.head, result.head_hash)
        self.tail = committed.tail
        return committed

    def close(self) -> None:
        """Close the log and release the lock."""
        self.event_log.close()
        self._lock.release()


_batch_encoder = msgspec.msgpack.Encoder()
_batch_decoder = msgspec.msgpack.Decoder(PreparedBatch)
_result_decoder = msgspec.msgpack.Decoder(CommitResult | str)


class WriterProcess:
    """A :class:`BatchWriter` in a child process; :meth:`commit` blocks until it committed."""

    def __init__(self, log_path: Path, *, sync: str, consumer: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_child_main, args=(child, str(log_path), sync, consumer),
            name="fleet-log-writer", daemon=True,
        )
        self._process.start()
        child.close()
        try:
            ready = self._receive()
        except LogError:
            self._process.join(10)
            self._conn.close()
            raise
        # "ready:<committed stream seq>:<head position>:<head hash, hex>"
        seq, head, head_hash = str(ready).split(":")[1:]
        self.committed_seq = int(seq)
        self.tail = Tail(int(head), bytes.fromhex(head_hash))

    def _receive(self) -> CommitResult | str:
        try:
            reply = _result_decoder.decode(self._conn.recv_bytes())
        except EOFError:
            raise LogError(f"the log writer process died (exit code {self._process.exitcode})") from None
        if isinstance(reply, str) and reply.startswith("busy:"):
            raise LogBusy(reply[5:])
        if isinstance(reply, str) and reply.startswith("error:"):
            raise LogError(f"the log writer failed: {reply[6:]}")
        return reply

    def commit(self, batch: PreparedBatch) -> CommitResult:
        """Send ``batch`` to the child and wait for its commit."""
        self._conn.send_bytes(_batch_encoder.encode(batch))
        result = self._receive()
        assert isinstance(result, CommitResult)
        self.committed_seq = max(self.committed_seq, batch.top_seq)
        self.tail = result.tail
        return result

    def close(self) -> None:
        """Ask the child to close the log and exit; wait for it."""
        try:
            self._conn.send_bytes(b"")
        except (BrokenPipeError, OSError):
            pass
        self._process.join(30)
        if self._process.is_alive():  # pragma: no cover - a wedged child
            self._process.kill()
        self._conn.close()


def _child_main(conn, log_path: str, sync: str, consumer: str) -> None:
    import gc

    writer = None
    try:
        try:
            writer = BatchWriter(EventLog(log_path, sync=sync), consumer)
        except LogBusy as e:
            conn.send_bytes(_batch_encoder.encode(f"busy:{e}"))
            return
        gc.freeze()  # the batch objects are short-lived and cycle-free
        tail = writer.tail
        conn.send_bytes(_batch_encoder.encode(
            f"ready:{writer.committed_seq}:{tail.position}:{tail.hash.hex()}"))
        while True:
            try:
                data = conn.recv_bytes()
            except EOFError:
                return  # the ingest process is gone; what is committed stays committed
            if not data:
                return
            try:
                result = writer.commit(_batch_decoder.decode(data))
            except Exception as e:  # reported to the parent, which stops
                conn.send_bytes(_batch_encoder.encode(f"error:{e!r}"))
                return
            conn.send_bytes(_batch_encoder.encode(result))
    finally:
        if writer is not None:
            writer.close()
