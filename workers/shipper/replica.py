"""A query replica's log: the ``LOG`` stream appended, row for row, to a log of its own.

An ordered consumer reads ``LOG`` from the replica's head + 1 (the stream's
sequence is the log position, see :mod:`workers.shipper.shipper`), so the
replica's ``log.db`` is its only checkpoint: killed at any moment, it resumes
exactly where its last transaction ended. Rows go in as shipped
(:meth:`events.log.EventLog.append_shipped`): same positions, ids,
``recorded_at`` and hashes, or none at all when one does not chain. At start
the replica checks that the stream's row at its head has its head's hash, so
a log from another history is refused, not extended. The lag is the
primary's shipped head (the stream's last sequence, also carried by each
delivery's pending count) less the replica's head.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client
from nats.js.api import ConsumerConfig, DeliverPolicy
from opentelemetry import metrics, trace

from events.errors import ChainBroken, InvalidEvent, LogBusy
from events.log import EventLog
from events.shipped import decode_row
from projections.errors import StoreBusy
from projections.store.lock import WriterLock
from workers.natsio.streams import StreamSpec, ensure_stream
from workers.shipper import telemetry
from workers.shipper.shipper import CHECKPOINT_HEADER, last_shipped

__all__ = ["LogReplica", "ReplicaConfig", "ReplicaStats"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
_meter = metrics.get_meter("workers.shipper")


@dataclass(frozen=True, kw_only=True)
class ReplicaConfig:
    """Where the replica reads from and how it writes (built from Settings in ``ops``)."""

    stream: StreamSpec
    subject: str
    #: the ingest consumer: its checkpoint is kept with the rows, and the replica holds its
    #: writer lock (so `fleet ingest --take-over` cannot write beside a running replica)
    consumer: str = "ingest"
    log_sync: str = "full"
    batch_max: int = 10_000
    #: how often the stream's last position is asked for (the lag when no delivery comes)
    refresh_secs: float = 1.0


@dataclass
class ReplicaStats:
    """Where the replica is, and how far behind the primary's shipped head."""

    position: int = 0
    primary: int = 0
    applied: int = 0
    batches: int = 0
    progress_at: float = 0.0
    started_at: float = 0.0

    @property
    def lag(self) -> int:
        return max(0, self.primary - self.position)


class LogReplica:
    """Appends the LOG stream to ``log_path`` until stopped; ``on_append`` after each batch."""

    def __init__(self, nc: Client, log_path: str | Path, config: ReplicaConfig,
                 on_append=None) -> None:
        self._nc = nc
        self._js = nc.jetstream(timeout=10)
        self.log_path = Path(log_path)
        self.config = config
        self.stats = ReplicaStats(started_at=time.time(), progress_at=time.time())
        self._on_append = on_append
        self._log: EventLog | None = None
        self._inbox: list = []
        self._wake = asyncio.Event()
        self._sub = None
        self._refreshed_at = 0.0
        self._lock: WriterLock | None = None
        _meter.create_observable_gauge(
            "fleet.replica.lag", callbacks=[self._observe_lag], unit="{event}",
            description="Log positions the replica is behind the primary's shipped head")

    def _observe_lag(self, _options):
        yield metrics.Observation(self.stats.lag, {"stream": self.config.stream.name})

    def health(self) -> dict:
        """Heartbeat details of the replica's log."""
        s = self.stats
        return {"position": s.position, "primary": s.primary, "lag": s.lag, "applied": s.applied,
                "stream": self.config.stream.name, "progress_at": s.progress_at}

    async def setup(self) -> int:
        """Open the log, check it against the stream, subscribe after its head; the head."""
        await ensure_stream(self._js, self.config.stream)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        name = f"{self.log_path.name}.{self.config.consumer}.lock"
        try:
            self._lock = WriterLock(self.log_path.parent, what=f"the log {self.log_path}", name=name).acquire()
        except StoreBusy as e:
            raise LogBusy(f"{e}: one writer per log - `fleet ingest` and `fleet replica` do not run"
                          " on one data directory together") from None
        self._log = await asyncio.to_thread(EventLog, self.log_path, sync=self.config.log_sync)
        tail = self._log.chain_tail
        last, _ = await last_shipped(self._js, self.config.stream.name)
        if tail.position:
            if tail.position > last:
                raise ChainBroken(
                    f"this replica's log ({self.log_path}) ends at position {tail.position}, the"
                    f" stream {self.config.stream.name} at {last}: the stream is not the one this"
                    " log was built from - point FLEET_LOG_STREAM at it, or start from an empty"
                    " data directory")
            msg = await self._js.get_msg(self.config.stream.name, tail.position)
            theirs = decode_row(msg.data).hash
            if theirs != tail.hash.hex():
                raise ChainBroken(
                    f"position {tail.position}: this replica's log has hash {tail.hash.hex()[:16]}...,"
                    f" stream {self.config.stream.name} {theirs[:16]}...: different histories -"
                    " start the replica from an empty data directory")
        self.stats.position = tail.position
        self.stats.primary = last
        start = tail.position + 1
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start)
        self._sub = await self._js.subscribe(self.config.subject, cb=self._on_msg, ordered_consumer=True,
                                             config=config, pending_msgs_limit=4 * self.config.batch_max,
                                             pending_bytes_limit=256 << 20)
        log.info("replica started", extra={"stream": self.config.stream.name, "position": tail.position,
                                           "primary": last})
        return tail.position

    async def _on_msg(self, msg) -> None:
        self._inbox.append(msg)
        if len(self._inbox) == 1 or len(self._inbox) >= self.config.batch_max:
            self._wake.set()

    @property
    def caught_up(self) -> bool:
        """Nothing received is waiting and the stream's last position is in the log."""
        return not self._inbox and self.stats.position >= self.stats.primary

    async def apply_pending(self) -> int:
        """Append what was received (up to ``batch_max``) in one transaction; rows appended."""
        if not self._inbox:
            return 0
        taken = self._inbox[:self.config.batch_max]
        del self._inbox[:len(taken)]
        rows = []
        checkpoint = None
        for msg in taken:
            if msg.headers and CHECKPOINT_HEADER in msg.headers:
                checkpoint = (self.config.consumer, int(msg.headers[CHECKPOINT_HEADER]))
            try:
                rows.append(decode_row(msg.data))
            except InvalidEvent as e:
                raise ChainBroken(f"stream {self.config.stream.name} message"
                                  f" {msg.metadata.sequence.stream}: {e.detail} - refused") from e
        # A redelivery (an ordered consumer reset) of rows already in the log: skip them.
        rows = [r for r in rows if r.position > self.stats.position]
        if not rows:
            return 0
        started = time.perf_counter()
        with tracer.start_as_current_span("replica.append") as span:
            span.set_attribute("fleet.replica.first", rows[0].position)
            span.set_attribute("fleet.replica.rows", len(rows))
            assert self._log is not None
            result = await asyncio.to_thread(self._log.append_shipped, rows, checkpoint=checkpoint)
        telemetry.apply_ms.record((time.perf_counter() - started) * 1000)
        telemetry.applied.add(len(rows))
        last = taken[-1].metadata
        s = self.stats
        s.position = result.head
        s.primary = max(s.primary, last.sequence.stream + (last.num_pending or 0))
        s.applied += len(rows)
        s.batches += 1
        s.progress_at = time.time()
        if self._on_append is not None:
            self._on_append(result)
        return len(rows)

    async def refresh_primary(self) -> None:
        """Ask the stream for its last position (the lag while nothing is delivered)."""
        info = await self._js.stream_info(self.config.stream.name)
        self.stats.primary = max(self.stats.primary, info.state.last_seq or 0)
        self._refreshed_at = time.monotonic()

    async def run(self, stop: asyncio.Event, *, until_idle_secs: float | None = None) -> ReplicaStats:
        """Append deliveries until ``stop`` (or, with ``until_idle_secs``, caught up and quiet)."""
        if self._sub is None:
            await self.setup()
        quiet_since = time.monotonic()
        try:
            while not stop.is_set():
                if await self.apply_pending():
                    quiet_since = time.monotonic()
                    continue
                if time.monotonic() - self._refreshed_at > self.config.refresh_secs:
                    try:
                        await self.refresh_primary()
                    except Exception as e:  # noqa: BLE001 - NATS away: the lag shown is the last known
                        log.warning("stream info failed", extra={"error": repr(e)})
                if until_idle_secs is not None and self.caught_up and \
                        time.monotonic() - quiet_since >= until_idle_secs:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), 0.1)
                except TimeoutError:
                    pass
        finally:
            if self._sub is not None:
                try:
                    await self._sub.unsubscribe()
                except Exception as e:  # noqa: BLE001 - best effort on the way out
                    log.debug("unsubscribe failed", extra={"error": repr(e)})
                self._sub = None
            if self._log is not None:
                self._log.close()
                self._log = None
            if self._lock is not None:
                self._lock.release()
                self._lock = None
        return self.stats
