"""A query replica's log: the ``LOG`` stream appended, row for row, to a log of its own.

An ephemeral pull consumer reads ``LOG`` from the replica's head + 1 into a
raw tap (the stream's sequence is the log position, see
:mod:`workers.shipper.shipper`), so the replica's ``log.db`` is its only
checkpoint: killed at any moment, it resumes exactly where its last
transaction ended, and a delivery lost in flight shows as a position gap and
is read again from the head. Rows go in as shipped
(:meth:`events.log.EventLog.append_shipped`): same positions, ids,
``recorded_at`` and hashes, or none at all when one does not chain. At start
the replica checks that the stream's row at its head has its head's hash, so
a log from another history is refused, not extended. The lag is the
primary's shipped head (the stream's last sequence, also carried by each
delivery's pending count) less the replica's head.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path

from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from opentelemetry import metrics, trace

from events.errors import ChainBroken, InvalidEvent, LogBusy
from events.log import EventLog
from events.shipped import decode_row
from projections.errors import StoreBusy
from projections.store.lock import WriterLock
from workers.natsio.client import FleetClient
from workers.natsio.streams import StreamSpec, ensure_stream
from workers.shipper import telemetry
from workers.shipper.shipper import CHECKPOINT_HEADER, last_shipped

__all__ = ["LogReplica", "ReplicaConfig", "ReplicaStats"]

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)
_meter = metrics.get_meter("workers.shipper")
#: the stats of the replica this process runs, by stream (what the lag gauge reports)
_running: dict[str, ReplicaStats] = {}


def _observe_lag(_options):
    for stream, stats in list(_running.items()):
        yield metrics.Observation(stats.lag, {"stream": stream})


_meter.create_observable_gauge("fleet.replica.lag", callbacks=[_observe_lag], unit="{event}",
                               description="Log positions the replica is behind the primary's shipped head")
_EXPIRES_SECS = 2.0  # a pull request's lifetime
_INACTIVE_SECS = 30.0  # an abandoned consumer (a killed replica's) goes after this
_PENDING = re.compile(rb"Nats-Pending-Messages:\s*(\d+)")
_CHECKPOINT = CHECKPOINT_HEADER.encode()


def _ack_tokens(reply: bytes) -> list[bytes]:
    tokens = reply.split(b".")
    # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending> (v1), or with
    # <domain>.<account> after ACK and a token at the end (v2)
    return tokens[2:] if len(tokens) == 9 else tokens[4:-1] if len(tokens) >= 12 else []


def _seq_of(reply: bytes) -> int | None:
    """The stream sequence of a delivery, from its reply subject (None if it has none)."""
    tokens = _ack_tokens(reply)
    return int(tokens[3]) if tokens and tokens[3].isdigit() else None


def _pending_of(reply: bytes) -> int:
    """Messages left in the stream after this delivery, from its reply subject."""
    tokens = _ack_tokens(reply)
    return int(tokens[6]) if tokens and tokens[6].isdigit() else 0


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
        self._consumer = ""
        self._inbox_subject = ""
        self._outstanding = 0
        self._requested_at = 0.0
        #: why the consumer must be made again (a delivery gap, the consumer gone); None: it need not
        self._refollow: str | None = None
        _running[self.config.stream.name] = self.stats

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
            self._lock = WriterLock(self.log_path.parent, what=f"the log {self.log_path}",
                                    name=name).acquire()
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
        await self._follow()
        log.info("replica started", extra={"stream": self.config.stream.name, "position": tail.position,
                                           "primary": last})
        return tail.position

    async def _follow(self) -> None:
        """A consumer of the stream from the log's head + 1 (ephemeral: the log is the checkpoint)."""
        if self._consumer:
            try:
                await self._js.delete_consumer(self.config.stream.name, self._consumer)
            except Exception as e:  # noqa: BLE001 - gone already, or NATS away: it lapses by itself
                log.debug("old consumer not deleted", extra={"error": repr(e)})
        if self._sub is not None:  # a new inbox: frames still on their way to the old one are dropped
            await self._sub.unsubscribe()
        self._inbox_subject = self._nc.new_inbox()
        self._sub = await self._nc.tap(self._inbox_subject, self._on_frame)
        self._inbox.clear()
        info = await self._js.add_consumer(self.config.stream.name, ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=self.stats.position + 1,
            ack_policy=AckPolicy.NONE, inactive_threshold=_INACTIVE_SECS, max_waiting=64,
            filter_subject=self.config.subject))
        self._consumer = info.name
        self._outstanding = 0
        self._requested_at = 0.0
        self._refollow = None

    def _on_frame(self, subject: bytes, reply: bytes, data: bytes, hdr: bytes | None) -> None:
        """The tap: keep each delivered row's bytes (and the checkpoint riding on it)."""
        if hdr is not None and not data and hdr.startswith(b"NATS/1.0 "):
            if hdr.startswith((b"NATS/1.0 409 Consumer Deleted", b"NATS/1.0 503")):
                self._refollow = "the consumer is gone"
            left = _PENDING.search(hdr)  # a request ended (expired, no messages): what it owed
            self._outstanding = max(0, self._outstanding - (int(left.group(1)) if left else 0))
            self._wake.set()
            return
        self._outstanding -= 1
        checkpoint = None
        if hdr is not None and _CHECKPOINT in hdr:
            value = FleetClient.parse_headers(hdr).get(CHECKPOINT_HEADER)
            checkpoint = int(value) if value and value.isdigit() else None
        self._inbox.append((data, checkpoint, reply))
        if len(self._inbox) == 1 or len(self._inbox) >= self.config.batch_max:
            self._wake.set()

    async def _request_more(self) -> None:
        """Keep about two batches requested (each request expires, giving back what it owed)."""
        target = 2 * self.config.batch_max
        now = time.monotonic()
        if now - self._requested_at > 2 * _EXPIRES_SECS:
            self._outstanding = 0  # requests lost (a reconnect) or expired
        want = target - self._outstanding - len(self._inbox)
        ageing = now - self._requested_at > _EXPIRES_SECS / 2
        if want < self.config.batch_max // 2 and not (want > 0 and ageing):
            return
        request = {"batch": want, "expires": int(_EXPIRES_SECS * 1e9), "max_bytes": 64 << 20}
        await self._nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{self.config.stream.name}.{self._consumer}",
                               json.dumps(request).encode(), reply=self._inbox_subject)
        self._outstanding += want
        self._requested_at = now

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
        expected = self.stats.position + 1
        for data, shipped_checkpoint, reply in taken:
            try:
                row = decode_row(data)
            except InvalidEvent as e:
                raise ChainBroken(f"stream {self.config.stream.name} message"
                                  f" {reply.decode(errors='replace')}: {e.detail} - refused") from e
            if row.position < expected:
                continue  # delivered again after a re-follow: already in the log
            if row.position > expected and _seq_of(reply) in (row.position, None):
                # A delivery lost in flight (positions are the stream's sequences): read again
                # from the head. A row whose position is not its sequence is left to the
                # chain check, which refuses it.
                self._refollow = f"delivery gap: position {row.position} arrived, {expected} expected"
                break
            rows.append(row)
            expected = row.position + 1
            if shipped_checkpoint is not None:
                checkpoint = (self.config.consumer, shipped_checkpoint)
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
        s = self.stats
        s.position = result.head
        pending = _pending_of(taken[-1][2])
        s.primary = max(s.primary, s.position + pending)
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
                try:
                    if self._refollow is not None:
                        log.warning("following the stream again", extra={
                            "reason": self._refollow, "position": self.stats.position})
                        await self._follow()
                    await self._request_more()
                except Exception as e:  # noqa: BLE001 - NATS away: the reconnect brings it back
                    log.warning("requesting rows failed, retrying", extra={"error": repr(e)})
                    self._refollow = self._refollow or f"request failed: {e!r}"
                    await asyncio.sleep(0.5)
                    continue
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
                    await self._js.delete_consumer(self.config.stream.name, self._consumer)
                except Exception as e:  # noqa: BLE001 - best effort on the way out: it lapses
                    log.debug("unsubscribe failed", extra={"error": repr(e)})
                self._sub = None
            if self._log is not None:
                self._log.close()
                self._log = None
            if self._lock is not None:
                self._lock.release()
                self._lock = None
        return self.stats
