"""The ingest worker: JetStream SDLC stream -> immutable log.

Design (measured in BENCHMARKS.md):

* **Receive**: a durable pull consumer with ``AckPolicy.ALL``. Pull requests
  are answered into a raw *tap* of :class:`~workers.natsio.client.FleetClient`: the
  protocol parser hands each frame's bytes straight to :meth:`_on_frame`,
  with no nats-py ``Msg``, queue or task switch per message.
* **Validate on arrival**: each frame is decoded and validated as it is
  parsed, into the open :class:`~workers.ingest.writer.PreparedBatch`
  (quarantine rows, or log rows: accepted events get their position and
  hash chain here, :mod:`events.chain`, built from the tail the previous
  batch is expected to leave). This runs while the writer commits the
  previous batch: the writer is the bottleneck, and the chain was a quarter
  of its work. The writer checks the expected tail under its write lock and
  chains again from the real one when it differs (another process
  appended, an id was logged already); so does the worker, before handing
  over a batch built on a guess that the previous commit proved wrong.
* **Group commit**: whenever the log's single writer (a child process by
  default) is free, everything validated so far (up to ``batch_max``)
  becomes the next transaction. Under load batches grow by themselves; at a
  trickle each event commits at once, with no timer to wait for.
* **Ack**: one ``+ACK`` on the batch's highest stream sequence after the commit; with
  ``AckPolicy.ALL`` it acknowledges the whole batch - and every delivery
  below it, received or not. So the worker checks that it received every
  delivery: the consumer sequence in each ack subject must be the one
  after the last. A delivery lost in flight (a disconnect, a slow-consumer
  cut, a previous process killed with messages on the wire) shows as a
  jump; the worker commits and acks what came before it, drops what came
  after, and *rewinds*: it re-creates the durable consumer at the log's
  checkpoint + 1, so the lost messages are delivered again instead of
  being acked by a later ack. It rewinds likewise at start when the
  consumer has delivered past the log's checkpoint, and when the consumer
  is deleted under it (which used to stall ingest for good).
* **Flow control**: about two batches are requested at a time, and each
  pull request carries a byte limit so that what is in flight stays under
  ``inflight_bytes`` (nats-server cuts off a client with more than its
  ``max_pending``, 64 MiB by default, waiting to be read).
* **Messages gone**: a stream with limits (``FLEET_STREAM_MAX_AGE_SECS``,
  ``FLEET_STREAM_MAX_BYTES``) may drop messages before ingest reads them.
  Deliveries come in stream order, so a jump in the stream sequence names
  what is gone: a warning, the ``fleet.ingest.gone`` count and a note on
  ingest's ``fleet health`` line - never a silent loss.
* **Duplicates**: redeliveries are recognised by stream sequence (at or below
  the committed checkpoint) without touching the index; republished events
  are dropped by JetStream's dedup window or, forever, by the log's unique
  id index.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import msgspec
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from opentelemetry import trace

from events.chain import RowChain, Tail, rechain
from events.codec import decode_event
from events.errors import InvalidEvent, StreamBehindLog
from events.logrows import Accepted, Rejected, id_key, now_iso
from workers.ingest import telemetry
from workers.ingest.config import IngestConfig, IngestStats
from workers.ingest.writer import BatchWriter, PreparedBatch, WriterProcess
from workers.natsio.client import LOG_APPENDED_SUBJECT, FleetClient
from workers.natsio.streams import ensure_stream

__all__ = ["IngestWorker", "ack_seqs"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
_iso = msgspec.json.Encoder().encode  # RFC 3339, ~10x cheaper than datetime.isoformat
_IDLE_POLL_SECS = 0.1  # how often an idle worker re-checks its pull requests and the stop flag
_REWIND_RETRY_SECS = 1.0  # after a rewind that failed (NATS unreachable)
_FRAME_SLACK = 64 * 1024  # a delivery's subject, reply and headers on top of its payload


def ack_seqs(reply: bytes) -> tuple[int, int]:
    """``(stream sequence, consumer sequence)`` of a JetStream ack subject (v1 and v2 layouts)."""
    tokens = reply.split(b".")
    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
    # $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>.<token>
    i = 5 if len(tokens) == 9 else 7
    return int(tokens[i]), int(tokens[i + 1])


@dataclass
class _OpenBatch:
    """A batch being filled by the tap: what the writer gets, and what the ack and traces need."""

    prepared: PreparedBatch = field(default_factory=PreparedBatch)
    #: the log rows, chained from the expected tail; made at the first accepted event,
    #: whose arrival is the rows' ``recorded_at``
    chain: RowChain | None = None
    size: int = 0
    top_reply: bytes = b""  # the ack subject of the highest stream sequence
    traced: list[tuple[dict[str, str], str]] = field(default_factory=list)


class IngestWorker:
    """Consumes the SDLC stream through ``writer`` into the log until stopped."""

    def __init__(self, nc: FleetClient, writer: BatchWriter | WriterProcess, config: IngestConfig,
                 *, guard: Callable[[], None] | None = None) -> None:
        """``guard()`` runs before each commit and raises to forbid it (the writer's lease)."""
        if not isinstance(nc, FleetClient):
            raise TypeError("the ingest worker needs a FleetClient (workers.natsio.client.connect gives one)")
        self._nc = nc
        self._js = nc.jetstream()
        self._writer = writer
        self._config = config
        self._guard = guard
        self._fenced = False  # the guard refused a commit: nothing more is written
        self._open: deque[_OpenBatch] = deque([_OpenBatch()])
        self._floor = writer.committed_seq  # sequences at or below it are committed
        #: the log's tail after the batch handed to the writer last (expected while it commits)
        self._tail: Tail = writer.tail
        self._outstanding = 0
        #: the consumer sequence the next delivery must carry (set by `setup`)
        self._next_cseq = 1
        #: the stream sequence the next first delivery should carry; above it, messages are gone
        self._next_sseq = self._floor + 1
        #: why the consumer must be rewound (a delivery gap, the consumer gone); None: it need not
        self._rewind_reason: str | None = None
        self._wake = asyncio.Event()
        self._last_msg_at = time.monotonic()
        self._last_request_at = 0.0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="log-writer")
        self._sub = None
        self._inbox = ""
        self._ready = False
        self._progress_at = time.time()
        self.stats = IngestStats()

    @property
    def backlog(self) -> int:
        """Messages received and validated, not yet committed."""
        return sum(batch.size for batch in self._open)

    def health(self) -> tuple[str, dict]:
        """State and details for the heartbeat (``backlog`` and ``progress_at`` feed stuck detection)."""
        s = self.stats
        return ("ok" if self._ready else "starting", {
            "appended": s.appended, "duplicates": s.duplicates, "quarantined": s.quarantined,
            "head": s.head, "rewinds": s.rewinds, "gone": s.gone, "committed_seq": self._floor,
            "backlog": self.backlog, "progress_at": self._progress_at,
            "last_commit_ms": round(s.last_commit_ms, 1),
        })

    # -- consumer set-up --------------------------------------------------

    async def setup(self) -> None:
        """Create the stream and the durable consumer when missing; rewind it when it has
        delivered past the log's checkpoint (those deliveries went to a process that is gone)."""
        cfg = self._config
        await ensure_stream(self._js, cfg.stream)
        await self._check_stream()
        try:
            info = await self._js.consumer_info(cfg.stream.name, cfg.durable)
        except NotFoundError:
            info = await self._js.add_consumer(cfg.stream.name, self._consumer_config())
            log.info("consumer created", extra={"stream": cfg.stream.name, "durable": cfg.durable})
        delivered = info.delivered.stream_seq or 0
        if delivered > self._floor:
            await self._rewind(f"the consumer delivered up to stream sequence {delivered}, the log"
                               f" has committed up to {self._floor}")
        else:
            self._next_cseq = (info.delivered.consumer_seq or 0) + 1

    async def _check_stream(self) -> None:
        """The stream must reach the log's checkpoint; one that ends below it was re-created."""
        cfg = self._config
        fix = (" Ingesting would skip its messages as already logged. To ingest the stream from"
               " its start, set FLEET_INGEST_DURABLE to a new name (event ids already in the log"
               " are still dropped as duplicates).")
        try:
            last = (await self._js.stream_info(cfg.stream.name)).state.last_seq
        except NotFoundError:
            raise StreamBehindLog(f"stream {cfg.stream.name} was deleted while ingest ran; a"
                                  " restarted ingest re-creates it, empty." + fix) from None
        if last < self._floor:
            raise StreamBehindLog(
                f"stream {cfg.stream.name} ends at sequence {last}, below the log's checkpoint"
                f" {self._floor} for consumer {cfg.durable!r}: the stream was re-created, or this"
                " log was filled from another stream." + fix)

    def _consumer_config(self, start_seq: int | None = None) -> ConsumerConfig:
        cfg = self._config
        return ConsumerConfig(
            durable_name=cfg.durable,
            ack_policy=AckPolicy.ALL,
            deliver_policy=DeliverPolicy.ALL if start_seq is None else DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start_seq,
            ack_wait=cfg.ack_wait_secs,
            max_ack_pending=cfg.batch_max * 4,
            max_waiting=512,
            max_deliver=-1,
        )

    async def _rewind(self, reason: str) -> None:
        """Re-create the consumer at the checkpoint + 1, with a new inbox (frames still on
        their way to the old one are dropped): everything not committed is delivered again."""
        cfg = self._config
        start = self._floor + 1
        log.warning("rewinding the ingest consumer", extra={
            "reason": reason, "durable": cfg.durable, "start_seq": start})
        with tracer.start_as_current_span("ingest.rewind") as span:
            span.set_attribute("fleet.ingest.start_seq", start)
            span.set_attribute("fleet.ingest.reason", reason)
            try:
                await self._js.delete_consumer(cfg.stream.name, cfg.durable)
            except NotFoundError:
                pass
            await self._js.add_consumer(cfg.stream.name, self._consumer_config(start))
            if self._sub is not None:
                await self._sub.unsubscribe()
                self._inbox = self._nc.new_inbox()
                self._sub = await self._nc.tap(self._inbox, self._on_frame)
        self._next_cseq = 1
        self._next_sseq = start
        self._outstanding = 0
        self._last_request_at = 0.0
        self._rewind_reason = None
        self.stats.rewinds += 1
        telemetry.rewinds.add(1)

    # -- receiving --------------------------------------------------------

    def _on_frame(self, subject: bytes, reply: bytes, data: bytes, hdr: bytes | None) -> None:
        """The tap: validate one delivered message into the open batch (runs inside the parser)."""
        if hdr is not None and not data and hdr.startswith(b"NATS/1.0 "):
            if hdr.startswith((b"NATS/1.0 503", b"NATS/1.0 409 Consumer Deleted")):
                self._need_rewind("the consumer is gone (deleted by someone, or lost by the server)")
            elif hdr[9:10] == b"4":
                self._on_status(hdr)
            return
        self._outstanding -= 1
        self._last_msg_at = time.monotonic()
        try:
            seq, cseq = ack_seqs(reply)
        except (ValueError, IndexError):
            # Not a JetStream delivery (someone published to the inbox): nothing to ack.
            log.warning("ignored a message without a JetStream reply on the pull inbox",
                        extra={"subject": subject.decode(errors="replace"), "bytes": len(data)})
            return
        if cseq != self._next_cseq or self._rewind_reason is not None:
            # A delivery went missing (or the consumer did): nothing more is taken
            # until the rewind, which delivers this one and the missing ones again.
            if self._rewind_reason is None:
                self._need_rewind(f"delivery gap: consumer sequence {cseq} arrived,"
                                  f" {self._next_cseq} expected (deliveries lost in flight, or"
                                  f" another client pulls from durable {self._config.durable!r})")
            return
        self._next_cseq = cseq + 1
        if seq >= self._next_sseq:  # not a redelivery
            if seq > self._next_sseq:
                self._gone(self._next_sseq, seq - 1)
            self._next_sseq = seq + 1
        batch = self._open[-1]
        if batch.size >= self._config.batch_max:
            batch = _OpenBatch()
            self._open.append(batch)
        batch.size += 1
        prepared = batch.prepared
        if seq > prepared.top_seq:  # the batch is acked by its highest stream sequence
            prepared.top_seq = seq
            batch.top_reply = reply
        if seq <= self._floor:
            prepared.skipped += 1  # a redelivery of a committed message: acked with the batch
        else:
            # Nothing below may raise into the parser: that would stall the connection.
            text = subject.decode("utf-8", "backslashreplace")
            try:
                if "\\" in text and text.encode() != subject:
                    prepared.rejected.append(Rejected(
                        data, "bad_subject", f"the subject is not UTF-8: {text!r}", text, None, seq))
                else:
                    self._validate(batch, text, seq, data, hdr)
            except Exception as e:  # a bug must not kill the parser: keep the input, move on
                log.exception("validation failed unexpectedly", extra={"stream_seq": seq})
                prepared.rejected.append(Rejected(data, "internal", repr(e), text, None, seq))
        self._wake.set()

    def _validate(self, batch: _OpenBatch, subject: str, seq: int, data: bytes, hdr: bytes | None
                  ) -> None:
        prepared = batch.prepared
        try:
            event = decode_event(data, max_bytes=self._config.max_event_bytes)
            payload = data.decode()
        except (InvalidEvent, UnicodeDecodeError) as e:
            if isinstance(e, UnicodeDecodeError):
                e = InvalidEvent("not_json", f"body is not UTF-8: {e}")
            headers = FleetClient.parse_headers(hdr) if hdr else None
            prepared.rejected.append(Rejected(data, e.reason, e.detail, subject,
                                              json.dumps(headers) if headers else None, seq))
            return
        traceparent = None
        if hdr is not None and b"traceparent" in hdr:
            headers = FleetClient.parse_headers(hdr)
            traceparent = headers.get("traceparent")
            if traceparent:
                batch.traced.append((headers, subject))
        chain = batch.chain
        if chain is None:
            chain = batch.chain = RowChain(self._expected_tail(), now_iso())
        chain.add(id_key(event.event_id), Accepted(
            event.event_id, event.__struct_config__.tag, event.source,
            _iso(event.occurred_at)[1:-1].decode(), payload, subject, traceparent,
        ))

    def _expected_tail(self) -> Tail:
        """Where the last open batch's rows start: after the open batches before it."""
        for batch in reversed(list(self._open)[:-1]):
            if batch.chain is not None:
                return batch.chain.tail
        return self._tail

    def _gone(self, first: int, last: int) -> None:
        count = last - first + 1
        self.stats.gone += count
        telemetry.gone.add(count)
        log.warning("stream messages were gone before ingest read them (stream limits or deletes)",
                    extra={"first_seq": first, "last_seq": last, "count": count,
                           "stream": self._config.stream.name})

    def _need_rewind(self, reason: str) -> None:
        """Take nothing more; the loop commits what came before and then rewinds."""
        if self._rewind_reason is None:
            self._rewind_reason = reason
            self._wake.set()

    def _on_status(self, hdr: bytes) -> None:
        """A pull request ended (404 no messages, 408 expired, 409 limits): forget what it owed.

        Wakes the loop, which asks again at once: a worker waiting for
        messages must not wait out its idle poll with no request open.
        """
        left = FleetClient.parse_headers(hdr).get("Nats-Pending-Messages", "0")
        self._outstanding = max(0, self._outstanding - int(left or 0))
        self._wake.set()

    async def _request_more(self) -> None:
        """Keep about two batches requested, and a request open that is not about to expire.

        A slow stream leaves most of a request unfilled until it expires; the
        server delivers nothing between its expiry and the next request (with
        a poll between them, that was a 100 ms stall every 2 s at 2,000
        events/s). So once the newest request is half its lifetime old, ask
        for whatever is missing even if it is little: requests overlap, and
        each one's expiry gives back what it still owed.
        """
        cfg = self._config
        target = cfg.batch_max * 2
        now = time.monotonic()
        if now - max(self._last_msg_at, self._last_request_at) > cfg.pull_expires_secs * 2:
            self._outstanding = 0  # requests lost (e.g. a reconnect) or all expired
        want = target - self._outstanding - self.backlog
        ageing = now - self._last_request_at > cfg.pull_expires_secs / 2
        if want < cfg.batch_max // 2 and not (ageing and want > 0):
            return
        # Its share of the in-flight byte budget, but room for one message of any size.
        max_bytes = max(want * cfg.inflight_bytes // target, self._nc.max_payload + _FRAME_SLACK)
        request = {"batch": want, "expires": int(cfg.pull_expires_secs * 1e9), "max_bytes": max_bytes}
        await self._nc.publish(
            f"$JS.API.CONSUMER.MSG.NEXT.{cfg.stream.name}.{cfg.durable}",
            json.dumps(request).encode(),
            reply=self._inbox,
        )
        self._outstanding += want
        self._last_request_at = now

    # -- committing -------------------------------------------------------

    async def _commit_next(self) -> None:
        """Commit the oldest open batch, then ack it."""
        batch = self._open.popleft()
        if not self._open:
            self._open.append(_OpenBatch())
        prepared = batch.prepared
        if batch.chain is not None:
            chained = batch.chain.chained()
            if chained.base != self._tail:  # the previous commit did not end where expected
                chained = rechain(chained, self._tail)
            prepared.chained = chained
            self._tail = chained.tail
        if self._config.failpoint == "before_commit" and self.stats.batches:
            os.kill(os.getpid(), signal.SIGKILL)
        if self._guard is not None:
            try:
                self._guard()
            except BaseException:
                self._fenced = True  # unacked: redelivered to the writer that holds the lease
                raise
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        with tracer.start_as_current_span("ingest.batch") as span:
            result = await loop.run_in_executor(self._executor, self._writer.commit, prepared)
            elapsed_ms = (time.perf_counter() - started) * 1000
            span.set_attribute("fleet.batch.size", batch.size)
            span.set_attribute("fleet.log.head", result.head)
        self._floor = max(self._floor, prepared.top_seq)
        self._tail = result.tail
        telemetry.trace_events(batch.traced, result.head)
        if self._config.failpoint == "after_commit":
            os.kill(os.getpid(), signal.SIGKILL)
        await self._nc.publish(batch.top_reply.decode(), b"+ACK")
        if result.appended:
            await self._nc.publish(LOG_APPENDED_SUBJECT, b"%d" % result.head)
        self._record(result, elapsed_ms)

    def _record(self, result, elapsed_ms: float) -> None:
        stats = self.stats
        stats.batches += 1
        stats.appended += result.appended
        stats.duplicates += result.duplicates
        stats.quarantined += result.quarantined
        stats.head = result.head
        self._progress_at = time.time()
        stats.last_commit_ms = elapsed_ms
        stats.commit_ms.append(elapsed_ms)
        telemetry.record_commit(result, elapsed_ms)

    # -- main loop --------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, until_idle_secs: float | None = None) -> IngestStats:
        """Consume until ``stop`` is set (or, with ``until_idle_secs``, the stream is drained)."""
        await self.setup()
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.tap(self._inbox, self._on_frame)
        # What exists now lives as long as the process; the per-message objects
        # made from here on are short-lived: keep the collector off the former.
        gc.freeze()
        self._ready = True
        log.info("ingest started", extra={"durable": self._config.durable,
                                          "committed_seq": self._floor})
        try:
            while not stop.is_set():
                if self._rewind_reason is None:
                    await self._request_more()
                elif not self._open[0].size:  # what came before is committed and acked
                    await self._rewind_when_needed()
                    continue
                if not self._open[0].size:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), _IDLE_POLL_SECS)
                    except asyncio.TimeoutError:
                        pass
                if self._open[0].size:
                    await self._commit_next()
                elif until_idle_secs is not None and await self._idle(until_idle_secs):
                    break
        finally:
            await self._sub.unsubscribe()
            # Finish the batches in hand: everything received is committed and acked.
            while self._open[0].size and not self._fenced:
                await self._commit_next()
            await self._nc.flush()
            self._executor.shutdown(wait=True)
        log.info("ingest stopped", extra={"appended": self.stats.appended,
                                          "duplicates": self.stats.duplicates,
                                          "quarantined": self.stats.quarantined})
        return self.stats

    async def _rewind_when_needed(self) -> None:
        assert self._rewind_reason is not None
        try:
            await self._check_stream()  # at start, setup has just checked it
            await self._rewind(self._rewind_reason)
        except StreamBehindLog:
            raise  # no retry can help
        except Exception as e:  # NATS unreachable: the reason stays, try again
            log.warning("rewind failed, retrying", extra={"error": repr(e)})
            await asyncio.sleep(_REWIND_RETRY_SECS)

    async def _idle(self, idle_secs: float) -> bool:
        if time.monotonic() - self._last_msg_at < idle_secs:
            return False
        info = await self._js.consumer_info(self._config.stream.name, self._config.durable)
        return info.num_pending == 0 and info.num_ack_pending == 0
