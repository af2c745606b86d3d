"""The log's single writer: decode, validate and append a batch of raw messages.

Two implementations of one seam:

* :class:`BatchWriter` runs in the caller's process (a thread of the ingest
  worker, or tests);
* :class:`WriterProcess` runs a :class:`BatchWriter` in a child process, so
  that decoding and SQLite work use the second core instead of competing with
  the NATS receive loop for the GIL. Batches cross a pipe as msgpack.

Both take a batch as a list of :class:`RawMessage` and return a
:class:`CommitResult` once the transaction has committed.
"""

from __future__ import annotations

import json
import multiprocessing
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import msgspec

from events.codec import decode_event
from events.errors import InvalidEvent, LogError
from events.log import Accepted, EventLog, Rejected

__all__ = ["BatchWriter", "CommitResult", "RawMessage", "WriterProcess"]


class RawMessage(NamedTuple):
    """One JetStream message as the writer needs it."""

    data: bytes
    subject: str
    stream_seq: int
    headers: dict[str, str] | None


class CommitResult(msgspec.Struct, array_like=True):
    """What one batch commit did; ``head`` is the log position after it."""

    appended: int
    duplicates: int
    quarantined: int
    head: int


@dataclass
class BatchWriter:
    """Validates raw messages and appends them to ``event_log`` with the checkpoint."""

    event_log: EventLog
    consumer: str
    max_event_bytes: int

    def __post_init__(self) -> None:
        self.committed_seq = self.event_log.consumer_checkpoint(self.consumer)

    def commit(self, batch: list[RawMessage]) -> CommitResult:
        """Append ``batch`` in one transaction; redeliveries of committed sequences are skipped."""
        accepted: list[Accepted] = []
        rejected: list[Rejected] = []
        floor = top = self.committed_seq
        skipped = 0
        max_bytes = self.max_event_bytes
        for data, subject, seq, headers in batch:
            if seq <= floor:
                skipped += 1
                continue
            if seq > top:
                top = seq
            try:
                event = decode_event(data, max_bytes=max_bytes)
                payload = data.decode()
            except InvalidEvent as e:
                rejected.append(_rejected(data, subject, seq, headers, e.reason, e.detail))
                continue
            except UnicodeDecodeError as e:  # pragma: no cover - msgspec rejects bad UTF-8 first
                rejected.append(_rejected(data, subject, seq, headers, "not_json", f"not UTF-8: {e}"))
                continue
            accepted.append(Accepted(
                event.event_id, event.__struct_config__.tag, event.source,
                _iso(event.occurred_at)[1:-1].decode(), payload, subject,
                headers.get("traceparent") if headers else None,
            ))
        result = self.event_log.append(accepted, rejected, checkpoint=(self.consumer, top))
        self.committed_seq = top
        return CommitResult(result.appended, result.duplicates + skipped, result.quarantined, result.head)

    def close(self) -> None:
        """Close the log."""
        self.event_log.close()


def _rejected(data: bytes, subject: str, seq: int, headers: dict | None, reason: str, detail: str
              ) -> Rejected:
    return Rejected(raw=data, reason=reason, detail=detail, subject=subject,
                    headers=json.dumps(headers) if headers else None, stream_seq=seq)


_iso = msgspec.json.Encoder().encode  # RFC 3339, ~10x cheaper than datetime.isoformat
_batch_encoder = msgspec.msgpack.Encoder()
_batch_decoder = msgspec.msgpack.Decoder(list[RawMessage])
_result_decoder = msgspec.msgpack.Decoder(CommitResult | str)


class WriterProcess:
    """A :class:`BatchWriter` in a child process; :meth:`commit` blocks until it committed."""

    def __init__(self, log_path: Path, *, sync: str, consumer: str, max_event_bytes: int) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(
            target=_child_main, args=(child, str(log_path), sync, consumer, max_event_bytes),
            name="fleet-log-writer", daemon=True,
        )
        self._process.start()
        child.close()
        ready = self._receive()
        self.committed_seq = int(ready)

    def _receive(self) -> CommitResult | str:
        try:
            reply = _result_decoder.decode(self._conn.recv_bytes())
        except EOFError:
            raise LogError(f"the log writer process died (exit code {self._process.exitcode})") from None
        if isinstance(reply, str) and reply.startswith("error:"):
            raise LogError(f"the log writer failed: {reply[6:]}")
        return reply

    def commit(self, batch: list[RawMessage]) -> CommitResult:
        """Send ``batch`` to the child and wait for its commit."""
        self._conn.send_bytes(_batch_encoder.encode(batch))
        result = self._receive()
        assert isinstance(result, CommitResult)
        self.committed_seq = max(self.committed_seq, max((m.stream_seq for m in batch), default=0))
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


def _child_main(conn, log_path: str, sync: str, consumer: str, max_event_bytes: int) -> None:
    import gc

    writer = None
    try:
        writer = BatchWriter(EventLog(log_path, sync=sync), consumer, max_event_bytes)
        gc.freeze()  # the batch objects are short-lived and cycle-free
        conn.send_bytes(_batch_encoder.encode(str(writer.committed_seq)))
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
