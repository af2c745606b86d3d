"""The change publisher: projection outboxes -> the JetStream ``GRAPH`` stream.

``ChangePublisher(nc, projections_dir, log_path).run(stop)`` drains each
version's outbox (written by the projector in the same LMDB transaction as
the graph change, DESIGN invariant 6) in change-sequence order:

* subject ``graph.<projection>.<kind>``, body the contract's JSON
  (:mod:`projections.changes.contract`), ``event_id`` and ``occurred_at`` looked up
  in the log for each causing position (one query per round),
  ``Nats-Msg-Id: <projection>@v<version>:<seq>``, and ``traceparent`` when the
  causing event was traced (a ``graph.change publish`` span continues that
  trace and is what the header carries on);
* a round of up to ``batch_max`` changes is pipelined; the watermark (see
  :mod:`projections.changes.outbox`) advances only over what JetStream
  acknowledged. A crash between ack and watermark republishes the same
  sequences with the same ids: JetStream's dedup window drops them, and
  downstream drops anything at or below the last sequence it applied;
* **the fence**: every message also carries ``Nats-Expected-Last-Msg-Id``,
  the id of the change before it. A reconnect in the middle of a pipelined
  round can lose a few messages while later ones (buffered by the client)
  still reach the server; the fence makes the server refuse those, so the
  stream never holds a change before its predecessor and the retry restores
  the order. It also means an ack for change *n* vouches for every change
  before it, so only every ``ack_every``-th change and the last of a round
  ask for an ack. When a round fails, the refusal (or, after a timeout, the
  stream's last message) names the last change the stream holds, and the
  watermark moves up to it; beyond the dedup window that is how a republish
  skips ahead instead of storing duplicates. The fence assumes this
  publisher is the only writer of its stream's ``<prefix>.<projection>.>``
  subjects and of the stream (one stream per publishing projection);
* order per projection: retired versions are drained (and must be sealed,
  i.e. no longer written) before the active version, whose first change is
  its ``rebuilt`` notice. ``building`` and ``ready`` versions emit nothing.

It wakes on :meth:`ChangePublisher.notify` (thread-safe; call it after a
projector batch commits) and also polls every ``poll_interval_ms``.

One publisher per projection publishes at a time: it holds
``<projections>/<projection>/publisher.lock``. Every worker runs a publisher,
so during a deploy the new release's worker beside the old one stands by
(health: ``standby``) and takes over when the old one stops.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from pathlib import Path

from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError
from opentelemetry import metrics

from events.errors import FleetError
from projections.errors import StoreBusy, UnknownVersion
from projections.store.lock import WriterLock
from projections.versions.catalog import Versions
from projections.versions.lanes import Lane, is_sealed, plan_lanes
from projections.versions.pointer import ActivePointer
from workers.changefeed.acks import AckedSender
from workers.changefeed.lane import ChangesConfig, ChangesStats, LanePublisher, Shared, failpoint_rounds
from workers.natsio.backoff import backoff_secs
from workers.natsio.streams import StreamSpec, ensure_stream

__all__ = ["ChangePublisher", "ChangesConfig", "ChangesStats", "GRAPH_STREAM"]

log = logging.getLogger(__name__)
meter = metrics.get_meter(__name__)
_lag = meter.create_gauge("fleet.changes.lag", unit="{change}",
                          description="Outbox head minus the publisher's watermark, per version")

#: the default stream: every projection's changes, ``graph.<projection>.<kind>``
GRAPH_STREAM = StreamSpec(name="GRAPH", subjects=("graph.>",))
_REPLAN_SECS = 1.0


class ChangePublisher:
    """Publishes projection ``projection``'s changes until stopped."""

    def __init__(self, nc: Client, projections_dir: str | Path, log_path: str | Path, *,
                 projection: str = "graph", stream: StreamSpec = GRAPH_STREAM,
                 config: ChangesConfig = ChangesConfig()) -> None:
        self._nc = nc
        self.projection = projection
        self.stream = stream
        self.config = config
        self.versions = Versions(projections_dir, projection)
        sender = AckedSender(nc, window=config.window, ack_timeout_secs=config.ack_timeout_secs)
        self._shared = Shared(nc, sender, projection, stream.name, Path(log_path), config,
                              kill_after=failpoint_rounds(config.failpoint))
        self.stats: ChangesStats = self._shared.stats
        self._ready = False
        self._lane_publishers: dict[int, LanePublisher] = {}
        self._done: set[tuple[int, float | None]] = set()
        self._lanes: list[Lane] = []
        self._planned_at = 0.0
        self._pointer = ActivePointer(self.versions)
        self._pointer_token: tuple[int, int] | None | bool = False  # False: never planned
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._lock = WriterLock(self.versions.root, what=f"{projection}'s change feed",
                                name="publisher.lock")
        #: why this publisher stands by (another process publishes the projection), or None
        self.standby: str | None = None

    # -- signalling and health ------------------------------------------------

    def notify(self) -> None:
        """Wake the publisher now (thread-safe; the projector committed outbox records)."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        try:
            loop.call_soon_threadsafe(wake.set)
        except RuntimeError:
            pass  # the loop is closed: the publisher has stopped

    def health(self) -> tuple[str, dict]:
        """State and details for the heartbeat (``backlog`` and ``progress_at`` feed stuck detection)."""
        s = self.stats
        if self.standby is not None:
            return "ok", {"projection": self.projection, "standby": self.standby, "backlog": 0,
                          "progress_at": time.time()}
        return ("ok" if self._ready else "starting", {
            "projection": self.projection, "version": s.version, "watermark": s.watermark,
            "head": s.head, "backlog": s.backlog, "progress_at": self._shared.progress_at,
            "published": s.published, "duplicates": s.duplicates, "errors": s.errors,
            "last_error": s.last_error, "waiting_on": s.waiting_on, "delay_ms": s.delay_ms,
        })

    @property
    def drained(self) -> bool:
        """Nothing publishable is waiting (as of the last pass)."""
        return (self._ready and self.standby is None and self.stats.backlog == 0
                and self.stats.waiting_on is None)

    # -- the loop ---------------------------------------------------------------

    async def setup(self) -> None:
        """Create the stream when missing."""
        await ensure_stream(self._nc.jetstream(), self.stream)
        self._ready = True

    async def run(self, stop: asyncio.Event, *, until_drained: bool = False) -> ChangesStats:
        """Publish until ``stop`` is set (or, with ``until_drained``, nothing is left)."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        interval = self.config.poll_interval_ms / 1000
        failures = 0
        log.info("change publisher started", extra={"projection": self.projection,
                                                    "stream": self.stream.name})
        stopper = asyncio.ensure_future(stop.wait())
        stopper.add_done_callback(lambda _: self._wake.set())
        try:
            while not stop.is_set():
                self._wake.clear()
                delay = interval
                try:
                    await self.publish_pending()
                    failures = 0
                except (FleetError, NatsError, OSError, asyncio.TimeoutError) as e:
                    failures += 1
                    self.stats.errors += 1
                    self.stats.last_error = str(e) or repr(e)
                    delay = backoff_secs(failures, random.random())
                    log.warning("change publishing failed; retrying",
                                extra={"projection": self.projection, "error": self.stats.last_error,
                                       "attempt": failures, "retry_in_secs": round(delay, 2)})
                    if isinstance(e, NotFoundError) or "503" in self.stats.last_error:
                        self._ready = False  # the stream is gone: create it again
                if until_drained and failures == 0 and self.drained:
                    break
                await self._idle(delay)
        finally:
            stopper.cancel()
            await self.close()
        log.info("change publisher stopped", extra={"published": self.stats.published,
                                                    "duplicates": self.stats.duplicates})
        return self.stats

    async def _idle(self, delay: float) -> None:
        """Wait for :meth:`notify` (or ``stop``) at most ``delay`` seconds: the poll."""
        assert self._wake is not None
        if self._wake.is_set():
            return
        try:
            await asyncio.wait_for(self._wake.wait(), delay)
        except asyncio.TimeoutError:
            pass

    async def close(self) -> None:
        """Release the ack subscription, the outbox environments, the log and the publisher lock."""
        await self._shared.sender.close()
        publishers, self._lane_publishers = self._lane_publishers, {}
        for publisher in publishers.values():
            publisher.close()
        self._shared.close()
        self._lock.release()

    def _take_lock(self) -> bool:
        """Hold the projection's publisher lock; False (standing by) while another process does."""
        if self._lock.held:
            return True
        try:
            self._lock.acquire()
        except StoreBusy as e:
            if self.standby is None:
                log.info("another process publishes this projection's changes; standing by",
                         extra={"projection": self.projection, "reason": str(e)})
            self.standby = str(e)
            return False
        if self.standby is not None:
            log.info("taking over publishing", extra={"projection": self.projection})
        self.standby = None
        return True

    async def publish_pending(self) -> int:
        """Publish everything publishable now, lane by lane; returns changes acknowledged."""
        if not self._ready:
            await self.setup()
        if not self._take_lock():
            return 0
        lanes = self._plan()
        total = 0
        backlog = 0
        self.stats.waiting_on = None
        for index, lane in enumerate(lanes):
            if lane.key in self._done:
                continue
            sealed = lane.active or await asyncio.to_thread(is_sealed, lane.path)
            try:
                publisher = self._lane_publishers.get(lane.version)
                if publisher is None or publisher.lane != lane:  # opening an environment: off the loop
                    publisher = await asyncio.to_thread(self._lane_publisher, lane)
                while True:
                    n = await publisher.round()
                    total += n
                    if n == 0 or not publisher.more:
                        break
            except UnknownVersion:
                log.warning("version vanished while publishing (dropped?)",
                            extra={"projection": self.projection, "version": lane.version})
                self._forget(lane)
                continue
            left = publisher.left
            if lane.active:
                backlog += left
                self.stats.version, self.stats.watermark = lane.version, publisher.watermark
                self.stats.head = publisher.head
                _lag.set(left, {"projection": self.projection, "version": lane.version})
                continue
            if sealed and left == 0:
                log.info("retired version drained", extra={"projection": self.projection,
                                                           "version": lane.version})
                self._done.add(lane.key)
                self._forget(lane)
                continue
            # Not sealed (a writer may still add to it) or not drained: nothing newer may go out.
            backlog += left + await asyncio.to_thread(self._waiting, lanes[index + 1:])
            self.stats.waiting_on = (f"v{lane.version} is still being written" if not sealed else
                                     f"v{lane.version} has {left} changes that cannot go out yet")
            break
        self.stats.backlog = backlog
        if backlog == 0:
            self._shared.progress_at = time.time()
        return total

    # -- lanes --------------------------------------------------------------------

    def _plan(self) -> list[Lane]:
        token = self._pointer.token()
        now = time.monotonic()
        if token != self._pointer_token or now - self._planned_at > _REPLAN_SECS:
            self._lanes = plan_lanes(self.versions)
            self._pointer_token, self._planned_at = token, now
        return self._lanes

    def _lane_publisher(self, lane: Lane) -> LanePublisher:
        publisher = self._lane_publishers.get(lane.version)
        if publisher is None or publisher.lane != lane:
            if publisher is not None:
                publisher.close()
            publisher = self._lane_publishers[lane.version] = LanePublisher(lane, self._shared)
        return publisher

    def _waiting(self, lanes: list[Lane]) -> int:
        """Unpublished changes of lanes held back behind an unsealed one."""
        waiting = 0
        for lane in lanes:
            if lane.key in self._done:
                continue
            try:
                publisher = self._lane_publisher(lane)
                publisher.refresh_head()
            except UnknownVersion:
                continue
            waiting += publisher.left
        return waiting

    def _forget(self, lane: Lane) -> None:
        publisher = self._lane_publishers.pop(lane.version, None)
        if publisher is not None:
            publisher.close()
