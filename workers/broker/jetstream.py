"""A dramatiq broker over NATS JetStream.

One stream (``DRAMATIQ``, subjects ``<prefix>.>``, work-queue retention), one
subject per queue, its delay queue and its dead letters, named by dramatiq's
``dq_name`` and ``xq_name`` (see :mod:`workers.broker.layout`). Each queue
and delay queue has a durable pull consumer with explicit ack, shared by
every worker process.

* Delayed messages wait on the DQ with an ``eta``; the worker holds them and
  moves them to the queue when due, as with dramatiq's other brokers.
* Held messages are kept alive with heartbeats; after a crash they come back
  once ``ack_wait_secs`` has passed.
* ``nack`` stores the message on the XQ with a per-message TTL
  (``dead_message_ttl_ms``); ``requeue`` naks for immediate redelivery.

nats-py runs on one event-loop thread owned by the broker
(:class:`~workers.broker._link.NatsLink`); dramatiq's threads are synchronous.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref

import nats.js.errors
from dramatiq.broker import Broker, Consumer
from dramatiq.common import current_millis, dq_name, xq_name
from dramatiq.errors import QueueJoinTimeout, QueueNotFound
from dramatiq.message import Message

from events.errors import ConfigError
from workers.broker._consumer import JetStreamConsumer
from workers.broker._link import NatsLink
from workers.broker.errors import BrokerRejected, BrokerUnavailable
from workers.broker.layout import (
    consumer_config,
    dedup_id,
    durable_name,
    ensure_consumer,
    ensure_stream,
    pull_request,
    queue_subject,
    stream_config,
)
from workers.natsio.client import redact_url

__all__ = ["DEFAULT_DEAD_MESSAGE_TTL_MS", "BrokerRejected", "BrokerUnavailable", "JetStreamBroker"]

log = logging.getLogger(__name__)

#: Dead-lettered messages are kept this long (as dramatiq's RedisBroker does).
DEFAULT_DEAD_MESSAGE_TTL_MS = 7 * 86_400_000


class JetStreamBroker(Broker):
    """A dramatiq broker that keeps its queues in one JetStream stream.

    Parameters:
      url: NATS server URL (``nats://host:4222``); comma-separated for a cluster.
      stream: the JetStream stream holding every queue.
      subject_prefix: first subject token; the stream takes ``<prefix>.>``.
      middleware: as for :class:`dramatiq.Broker` (``None``: dramatiq's defaults).
      ack_wait_secs: how long a delivery whose holder stopped heartbeating
        (a crashed worker) waits before redelivery.
      dead_message_ttl_ms: how long dead-lettered messages are kept.
      duplicate_window_secs: JetStream's publish dedup window.
      replicas: stream replicas (3 on a JetStream cluster).
      max_ack_pending: per-queue cap on delivered, unacked messages (-1: none).
      max_deliveries: a message delivered this many times without being
        settled (its worker crashed or hung every time) is dead-lettered on
        the next delivery instead of crashing workers forever (0: no cap).
        Exceptions raised by an actor are not deliveries lost: dramatiq's
        Retries middleware counts those.
      connect_timeout_secs: how long to try reaching NATS at start.
      op_timeout_secs: how long one JetStream request (publish, info) may take.

    Raises :class:`~events.errors.TransientError` naming ``url`` when NATS
    cannot be reached, :class:`~events.errors.ConfigError` when the stream
    exists with another retention policy.
    """

    def __init__(
        self,
        url: str,
        *,
        stream: str = "DRAMATIQ",
        subject_prefix: str = "dramatiq",
        middleware: list | None = None,
        ack_wait_secs: float = 30.0,
        dead_message_ttl_ms: int = DEFAULT_DEAD_MESSAGE_TTL_MS,
        duplicate_window_secs: float = 120.0,
        replicas: int = 1,
        max_ack_pending: int = -1,
        max_deliveries: int = 20,
        connect_timeout_secs: float = 5.0,
        op_timeout_secs: float = 10.0,
    ) -> None:
        super().__init__(middleware=middleware)
        self.url = redact_url(url)
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.queues: set[str] = set()
        self.ack_wait_secs = ack_wait_secs
        self.dead_message_ttl_ms = dead_message_ttl_ms
        self._max_ack_pending = max_ack_pending
        self.max_deliveries = max_deliveries
        self._durables: dict[str, str] = {}
        self._consumers: weakref.WeakSet[Consumer] = weakref.WeakSet()
        self._close_lock = threading.Lock()
        self._closed = False
        servers = [u.strip() for u in url.split(",")] if "," in url else url
        self._link = NatsLink(servers, url=self.url, name=f"dramatiq-jetstream-{stream}",
                              connect_timeout_secs=connect_timeout_secs, op_timeout_secs=op_timeout_secs,
                              heartbeat_secs=max(ack_wait_secs / 3, 0.05))
        config = stream_config(stream, subject_prefix, replicas=replicas,
                               duplicate_window_secs=duplicate_window_secs)
        try:
            self._link.call(lambda: ensure_stream(self._link.js, config), what=f"declare stream {stream}")
        except BaseException:
            self._link.close()
            raise
        atexit.register(self.close)
        log.info("dramatiq broker connected", extra={"url": self.url, "stream": stream, "prefix": subject_prefix})

    # -- dramatiq's Broker API -------------------------------------------------

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        """A consumer of ``queue_name`` holding at most ``prefetch`` unacked messages.

        ``timeout`` is how long (ms) one iteration waits before yielding ``None``.
        Raises :class:`dramatiq.errors.QueueNotFound` for an undeclared queue.
        """
        if queue_name not in self.queues and queue_name not in self.delay_queues:
            raise QueueNotFound(queue_name)
        # Declared again: a consumer restarts after errors, e.g. its durable was deleted.
        self._ensure_consumer(queue_name)
        consumer = JetStreamConsumer(self, queue_name, prefetch=prefetch, timeout_ms=timeout)
        self._consumers.add(consumer)
        return consumer

    def declare_queue(self, queue_name: str) -> None:
        """Declare ``queue_name`` and its delay queue: a durable consumer for each."""
        if queue_name in self.queues:
            return
        delayed = dq_name(queue_name)
        for name in (queue_name, delayed):
            queue_subject(self.subject_prefix, name)
            owner = self._durables.setdefault(durable_name(name), name)
            if owner != name:
                raise ConfigError(f"queues {owner!r} and {name!r} map to the same consumer"
                                  f" {durable_name(name)!r} - rename one of them")
        self.emit_before("declare_queue", queue_name)
        self._ensure_consumer(queue_name)
        self._ensure_consumer(delayed)
        self.queues.add(queue_name)
        self.emit_after("declare_queue", queue_name)
        self.delay_queues.add(delayed)
        self.emit_after("declare_delay_queue", delayed)

    def enqueue(self, message: Message, *, delay: int | None = None) -> Message:
        """Store ``message`` on its queue, or on its delay queue with an ``eta``.

        Returns once JetStream acknowledged the write. ``delay`` is in ms.
        """
        if delay is not None:
            message = message.copy(queue_name=dq_name(message.queue_name),
                                   options={"eta": current_millis() + delay})
        subject = queue_subject(self.subject_prefix, message.queue_name)
        self.emit_before("enqueue", message, delay)
        data = message.encode()
        headers = {"Nats-Msg-Id": dedup_id(message)}
        self._link.call(lambda: self._link.js.publish(subject, data, headers=headers, stream=self.stream),
                        what=f"enqueue on {message.queue_name}")
        self.emit_after("enqueue", message, delay)
        return message

    def get_declared_queues(self) -> set[str]:
        """The queues declared on this broker (not their delay queues)."""
        return self.queues.copy()

    def flush(self, queue_name: str) -> None:
        """Drop every message waiting on ``queue_name`` and its delay queue."""
        self._purge(queue_name)
        self._purge(dq_name(queue_name))

    def flush_all(self) -> None:
        """Drop every message of every declared queue, dead letters included."""
        for queue_name in self.queues:
            self.flush(queue_name)
            self._purge(xq_name(queue_name))

    def join(self, queue_name: str, *, timeout: int | None = None, interval: int = 50) -> None:
        """Wait until ``queue_name`` and its delay queue hold no pending or unacked message.

        ``timeout`` and ``interval`` are in ms. Raises
        :class:`dramatiq.errors.QueueJoinTimeout` when the timeout elapses.
        """
        if queue_name not in self.queues:
            raise QueueNotFound(queue_name)
        deadline = None if timeout is None else time.monotonic() + timeout / 1000
        # Queue, delay queue, queue again: a due message reaches the queue
        # before its DQ copy is acked, so it is never invisible.
        names = (queue_name, dq_name(queue_name), queue_name)
        while not all(self.backlog(name) == 0 for name in names):
            if deadline is not None and time.monotonic() >= deadline:
                raise QueueJoinTimeout(queue_name)
            time.sleep(interval / 1000)

    def close(self) -> None:
        """Close consumers, requeue what this process holds, flush acks, disconnect."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        for consumer in list(self._consumers):
            consumer.close()
        self._link.close()
        log.info("dramatiq broker closed", extra={"stream": self.stream})

    # -- beyond dramatiq's API -------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the NATS connection is up right now (it reconnects by itself)."""
        return not self._closed and self._link.nc.is_connected

    def backlog(self, queue_name: str) -> int:
        """Messages of ``queue_name`` (or its ``.DQ``) not acked yet: pending plus delivered."""
        info = self._link.call(lambda: self._link.js.consumer_info(self.stream, durable_name(queue_name)),
                               what=f"read consumer of {queue_name}")
        return (info.num_pending or 0) + (info.num_ack_pending or 0)

    def dead_letters(self, queue_name: str, *, limit: int = 1000) -> list[Message]:
        """The dead-lettered messages of ``queue_name``, oldest first (read, not removed)."""
        subject = queue_subject(self.subject_prefix, xq_name(queue_name))

        async def read() -> list[bytes]:
            found, seq = [], 1
            while len(found) < limit:
                try:
                    raw = await self._link.js.get_msg(self.stream, seq=seq, subject=subject, next=True)
                except nats.js.errors.NotFoundError:
                    break
                found.append(raw.data)
                seq = raw.seq + 1
            return found

        messages = []
        for data in self._link.call(read, what=f"read dead letters of {queue_name}"):
            try:
                messages.append(Message.decode(data))
            except Exception:
                log.warning("undecodable dead letter", extra={"queue": queue_name, "bytes": len(data)})
        return messages

    # -- used by JetStreamConsumer ---------------------------------------------

    def _pull(self, queue_name: str, inbox: str, batch: int, expires_secs: float) -> None:
        """Ask the queue's durable for up to ``batch`` messages, delivered to ``inbox``."""
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{durable_name(queue_name)}"
        self._link.post(subject, pull_request(batch, expires_secs), inbox)

    def _dead_letter(self, queue_name: str, data: bytes, *, reason: str, key: str) -> None:
        """Store ``data`` on the XQ of ``queue_name``, kept for ``dead_message_ttl_ms``."""
        xq = xq_name(queue_name)
        subject = queue_subject(self.subject_prefix, xq)
        headers = {"Nats-Msg-Id": f"{key}:{xq}", "Dramatiq-Reason": reason[:1024]}
        ttl_secs = max(1, self.dead_message_ttl_ms // 1000)
        self._link.call(lambda: self._link.js.publish(subject, data, headers=headers, stream=self.stream,
                                                      msg_ttl=ttl_secs),
                        what=f"dead-letter on {xq}")
        log.warning("message dead-lettered", extra={"queue": queue_name, "reason": reason[:200]})

    def _ensure_consumer(self, queue_name: str) -> None:
        config = consumer_config(self.subject_prefix, queue_name, ack_wait_secs=self.ack_wait_secs,
                                 max_ack_pending=self._max_ack_pending)
        self._link.call(lambda: ensure_consumer(self._link.js, self.stream, config),
                        what=f"declare consumer of {queue_name}")

    def _purge(self, queue_name: str) -> None:
        subject = queue_subject(self.subject_prefix, queue_name)
        self._link.call(lambda: self._link.js.purge_stream(self.stream, subject=subject),
                        what=f"flush {queue_name}")
