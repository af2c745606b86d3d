"""The ingest worker: JetStream SDLC stream -> immutable log.

Design (measured in BENCHMARKS.md):

* **Receive**: a durable pull consumer with ``AckPolicy.ALL``. Pull requests
  are answered into one subscription callback that only appends the message
  to a buffer; nats-py's ``fetch()`` costs ~23 µs a message, the callback a
  fraction of that.
* **Commit**: the log's single writer (a child process by default, see
  :mod:`workers.log_writer`) decodes, validates and appends a batch in one
  SQLite transaction (quarantined input and the consumer checkpoint included)
  while the event loop keeps receiving the next batch on the other core.
* **Ack**: one ``+ACK`` on the batch's last message after the commit; with
  ``AckPolicy.ALL`` it acknowledges the whole batch.
* **Duplicates**: redeliveries are recognised by stream sequence (at or below
  the committed checkpoint) without touching the index; republished events
  are dropped by JetStream's dedup window or, forever, by the log's unique
  id index.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from opentelemetry import metrics, propagate, trace

from .log_writer import BatchWriter, RawMessage, WriterProcess
from .nats import LOG_APPENDED_SUBJECT, StreamSpec, ensure_stream

__all__ = ["IngestConfig", "IngestStats", "IngestWorker", "stream_seq"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
meter = metrics.get_meter(__name__)
_events_counter = meter.create_counter("fleet.ingest.events", unit="{event}",
                                       description="Events handled by ingest, by outcome")
_commit_hist = meter.create_histogram("fleet.ingest.batch.commit", unit="ms",
                                      description="Latency of one batch commit")


@dataclass(frozen=True, kw_only=True)
class IngestConfig:
    """How the ingest worker consumes (built from Settings in ``ops``)."""

    stream: StreamSpec
    durable: str = "ingest"
    batch_max: int = 20_000
    max_wait_ms: int = 50
    max_event_bytes: int = 1024 * 1024
    ack_wait_secs: float = 30
    pull_expires_secs: float = 2
    failpoint: str | None = None  # "after_commit": SIGKILL between commit and ack (tests)


@dataclass
class IngestStats:
    """Counters of one worker run (also exported as metrics)."""

    appended: int = 0
    duplicates: int = 0
    quarantined: int = 0
    batches: int = 0
    head: int = 0
    last_commit_ms: float = 0.0
    # The latest batch latencies only: a long-running worker must not grow without bound.
    commit_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))


def stream_seq(reply: str) -> int:
    """The stream sequence in a JetStream ack subject (v1 and v2 token layouts)."""
    tokens = reply.split(".")
    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
    # $JS.ACK.<domain>.<account>.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>.<token>
    return int(tokens[5] if len(tokens) == 9 else tokens[7])


class IngestWorker:
    """Consumes the SDLC stream through ``writer`` into the log until stopped."""

    def __init__(self, nc: Client, writer: BatchWriter | WriterProcess, config: IngestConfig) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._writer = writer
        self._config = config
        self._buffer: list[Msg] = []
        self._outstanding = 0
        self._wake = asyncio.Event()
        self._last_msg_at = time.monotonic()
        self._last_request_at = 0.0
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="log-writer")
        self._sub = None
        self._inbox = ""
        self._ready = False
        self._progress_at = time.time()
        self.stats = IngestStats()

    def health(self) -> tuple[str, dict]:
        """State and details for the heartbeat (``backlog`` and ``progress_at`` feed stuck detection)."""
        s = self.stats
        return ("ok" if self._ready else "starting", {
            "appended": s.appended, "duplicates": s.duplicates, "quarantined": s.quarantined,
            "head": s.head, "committed_seq": self._writer.committed_seq,
            "backlog": len(self._buffer), "progress_at": self._progress_at,
            "last_commit_ms": round(s.last_commit_ms, 1),
        })

    # -- consumer set-up --------------------------------------------------

    async def setup(self) -> None:
        """Create the stream and the durable consumer when missing."""
        cfg = self._config
        await ensure_stream(self._js, cfg.stream)
        try:
            await self._js.consumer_info(cfg.stream.name, cfg.durable)
        except NotFoundError:
            await self._js.add_consumer(
                cfg.stream.name,
                ConsumerConfig(
                    durable_name=cfg.durable,
                    ack_policy=AckPolicy.ALL,
                    deliver_policy=DeliverPolicy.ALL,
                    ack_wait=cfg.ack_wait_secs,
                    max_ack_pending=cfg.batch_max * 4,
                    max_waiting=512,
                    max_deliver=-1,
                ),
            )
            log.info("consumer created", extra={"stream": cfg.stream.name, "durable": cfg.durable})

    # -- receiving --------------------------------------------------------

    async def _on_msg(self, msg: Msg) -> None:
        headers = msg.headers
        if headers and "Status" in headers and not msg.data:
            status = headers["Status"]
            if status in ("404", "408", "409"):
                # The request ended: whatever it had not delivered is no longer coming.
                left = int(headers.get("Nats-Pending-Messages", "0") or 0)
                self._outstanding = max(0, self._outstanding - left)
            return
        self._outstanding -= 1
        self._last_msg_at = time.monotonic()
        self._buffer.append(msg)
        if len(self._buffer) >= self._config.batch_max:
            self._wake.set()

    async def _request_more(self) -> None:
        cfg = self._config
        target = cfg.batch_max * 2
        now = time.monotonic()
        if now - max(self._last_msg_at, self._last_request_at) > cfg.pull_expires_secs * 2:
            self._outstanding = 0  # requests lost (e.g. a reconnect) or all expired
        want = target - self._outstanding - len(self._buffer)
        if want < cfg.batch_max // 2:
            return
        request = {"batch": want, "expires": int(cfg.pull_expires_secs * 1e9)}
        await self._nc.publish(
            f"$JS.API.CONSUMER.MSG.NEXT.{cfg.stream.name}.{cfg.durable}",
            json.dumps(request).encode(),
            reply=self._inbox,
        )
        self._outstanding += want
        self._last_request_at = now

    # -- committing -------------------------------------------------------

    async def _flush_batch(self) -> None:
        msgs, self._buffer = (self._buffer[: self._config.batch_max],
                              self._buffer[self._config.batch_max:])
        batch = [RawMessage(m.data, m.subject, stream_seq(m.reply), m.headers) for m in msgs]
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        with tracer.start_as_current_span("ingest.batch") as span:
            result = await loop.run_in_executor(self._executor, self._writer.commit, batch)
            elapsed_ms = (time.perf_counter() - started) * 1000
            span.set_attribute("fleet.batch.size", len(batch))
            span.set_attribute("fleet.log.head", result.head)
        _trace_events(msgs, result.head)
        if self._config.failpoint == "after_commit":
            os.kill(os.getpid(), signal.SIGKILL)
        await self._nc.publish(msgs[-1].reply, b"+ACK")
        if result.appended:
            await self._nc.publish(LOG_APPENDED_SUBJECT, b"%d" % result.head)
        stats = self.stats
        stats.batches += 1
        stats.appended += result.appended
        stats.duplicates += result.duplicates
        stats.quarantined += result.quarantined
        stats.head = result.head
        self._progress_at = time.time()
        stats.last_commit_ms = elapsed_ms
        stats.commit_ms.append(elapsed_ms)
        _commit_hist.record(elapsed_ms)
        _events_counter.add(result.appended, {"outcome": "appended"})
        if result.duplicates:
            _events_counter.add(result.duplicates, {"outcome": "duplicate"})
        if result.quarantined:
            _events_counter.add(result.quarantined, {"outcome": "quarantined"})
            log.warning("input quarantined", extra={"count": result.quarantined, "head": result.head})

    # -- main loop --------------------------------------------------------

    async def run(self, stop: asyncio.Event, *, until_idle_secs: float | None = None) -> IngestStats:
        """Consume until ``stop`` is set (or, with ``until_idle_secs``, the stream is drained)."""
        await self.setup()
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(
            self._inbox, cb=self._on_msg, pending_msgs_limit=-1, pending_bytes_limit=-1
        )
        wait_secs = self._config.max_wait_ms / 1000
        self._ready = True
        log.info("ingest started", extra={"durable": self._config.durable,
                                          "committed_seq": self._writer.committed_seq})
        try:
            while not stop.is_set():
                await self._request_more()
                if len(self._buffer) < self._config.batch_max:
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), wait_secs)
                    except asyncio.TimeoutError:
                        pass
                if self._buffer:
                    await self._flush_batch()
                elif until_idle_secs is not None and await self._idle(until_idle_secs):
                    break
        finally:
            await self._sub.unsubscribe()
            # Finish the batch in hand: everything received is committed and acked.
            while self._buffer:
                await self._flush_batch()
            await self._nc.flush()
            self._executor.shutdown(wait=True)
        log.info("ingest stopped", extra={"appended": self.stats.appended,
                                          "duplicates": self.stats.duplicates,
                                          "quarantined": self.stats.quarantined})
        return self.stats

    async def _idle(self, idle_secs: float) -> bool:
        if time.monotonic() - self._last_msg_at < idle_secs:
            return False
        info = await self._js.consumer_info(self._config.stream.name, self._config.durable)
        return info.num_pending == 0 and info.num_ack_pending == 0


def _trace_events(msgs: list[Msg], head: int) -> None:
    """Continue the trace of every event that arrived with a ``traceparent``."""
    for msg in msgs:
        if msg.headers and "traceparent" in msg.headers:
            parent = propagate.extract(msg.headers)
            span = tracer.start_span("sdlc.ingest", context=parent, kind=trace.SpanKind.CONSUMER)
            span.set_attribute("messaging.message.id", msg.headers.get("Nats-Msg-Id", ""))
            span.set_attribute("messaging.destination.name", msg.subject)
            span.set_attribute("fleet.log.head", head)
            span.end()
