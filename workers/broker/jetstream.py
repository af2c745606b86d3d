"""A dramatiq broker over NATS JetStream.

Layout: one stream (``DRAMATIQ``, subjects ``<prefix>.>``) with work-queue
retention, so an acked message is gone; one subject per queue
(``<prefix>.<queue>``), its delay queue (``<prefix>.<queue>.DQ``) and its
dead letters (``<prefix>.<queue>.XQ``), named by dramatiq's ``dq_name`` and
``xq_name``. Each queue and delay queue has a durable pull consumer with
explicit ack shared by every worker process.

* Delayed messages wait on the DQ with an ``eta``; the worker holds them and
  moves them to the queue when due, as with dramatiq's other brokers.
* Messages a worker holds are kept alive with ``+WPI`` every third of
  ``ack_wait``; after a crash they come back once ``ack_wait`` has passed.
* ``nack`` stores the message on the XQ with a per-message TTL
  (``dead_message_ttl_ms``); ``requeue`` naks for immediate redelivery.
* ``Nats-Msg-Id`` is the dramatiq message id plus the target queue and retry
  count: a retry or a DQ -> queue move reuses the message id and must not be
  taken for a duplicate, while a publish repeated after a crash still is.

nats-py runs on one event-loop thread owned by the broker; dramatiq's
synchronous threads hand it coroutines (:class:`~workers.broker._loop.LoopThread`).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.errors
import nats.js.errors
from dramatiq.broker import Broker, Consumer
from dramatiq.common import current_millis, dq_name, xq_name
from dramatiq.errors import BrokerError, ConnectionClosed, QueueJoinTimeout, QueueNotFound
from dramatiq.message import Message
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig

from events.errors import ConfigError, PermanentError, TransientError
from workers.nats import connect

from ._urls import redact_url

__all__ = [
    "BrokerRejected",
    "BrokerUnavailable",
    "JetStreamBroker",
    "dedup_id",
    "durable_name",
    "queue_subject",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Dead-lettered messages are kept this long (like dramatiq's RedisBroker).
DEFAULT_DEAD_MESSAGE_TTL_MS = 7 * 86_400_000

_ACK, _NAK, _WPI = b"+ACK", b"-NAK", b"+WPI"


class BrokerUnavailable(TransientError, ConnectionClosed):
    """NATS did not answer; dramatiq's worker retries on this (a ``ConnectionClosed``)."""


class BrokerRejected(PermanentError, BrokerError):
    """JetStream refused an operation (limits, a stream bound elsewhere, ...)."""


def queue_subject(prefix: str, queue_name: str) -> str:
    """The subject that carries ``queue_name`` (``dramatiq.default.DQ``)."""
    if any(not token for token in queue_name.split(".")):
        raise ConfigError(f"queue name {queue_name!r} has an empty subject token - drop the repeated dots")
    return f"{prefix}.{queue_name}"


def durable_name(queue_name: str) -> str:
    """The durable consumer of ``queue_name``; NATS names cannot hold dots."""
    return queue_name.replace(".", "_")


def dedup_id(message: Message) -> str:
    """The ``Nats-Msg-Id`` of one enqueue of ``message`` (id, queue, retry count)."""
    return f"{message.message_id}:{message.queue_name}:{message.options.get('retries', 0)}"


class JetStreamBroker(Broker):
    """A dramatiq broker that keeps its queues in one JetStream stream.

    Parameters:
      url: NATS server URL (``nats://host:4222``); comma-separated for a cluster.
      stream: the JetStream stream holding every queue.
      subject_prefix: first subject token; the stream takes ``<prefix>.>``.
      middleware: as for :class:`dramatiq.Broker` (``None`` = dramatiq's defaults).
      ack_wait_secs: how long a delivered, unacked message stays with a worker
        that stopped sending heartbeats (a crashed one) before redelivery.
      dead_message_ttl_ms: how long dead-lettered messages are kept.
      duplicate_window_secs: JetStream publish dedup window.
      replicas: stream replicas (3 on a JetStream cluster).
      max_ack_pending: per-queue cap on delivered, unacked messages (-1: none).
      connect_timeout_secs: how long to try reaching NATS at start.
      op_timeout_secs: how long one JetStream request (publish, info) may take.

    Raises :class:`~events.errors.TransientError` naming ``url`` when NATS
    cannot be reached, and :class:`~events.errors.ConfigError` when the stream
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
        connect_timeout_secs: float = 5.0,
        op_timeout_secs: float = 10.0,
    ) -> None:
        super().__init__(middleware=middleware)
        self.url = url
        self._safe_url = redact_url(url)
        self.stream = stream
        self.subject_prefix = subject_prefix
        self.queues: set[str] = set()
        self.ack_wait_secs = ack_wait_secs
        self.dead_message_ttl_ms = dead_message_ttl_ms
        self._duplicate_window_secs = duplicate_window_secs
        self._replicas = replicas
        self._max_ack_pending = max_ack_pending
        self._op_timeout_secs = op_timeout_secs
        self._durables: dict[str, str] = {}
        self._lock = threading.Lock()
        self._in_flight: dict[str, None] = {}  # reply subjects held by this process
        self._outbox: list[tuple[str, bytes, str]] = []
        self._outbox_scheduled = False
        self._consumers: weakref.WeakSet[Consumer] = weakref.WeakSet()
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

        from ._loop import LoopThread

        servers = [u.strip() for u in url.split(",")] if "," in url else url

        self._loop = LoopThread(f"dramatiq-jetstream-{stream}")
        try:
            self._nc = self._loop.run(lambda: self._connect(servers, connect_timeout_secs),
                                      timeout_secs=connect_timeout_secs + 5)
        except BaseException:
            self._loop.stop()
            raise
        self._js = self._nc.jetstream(timeout=op_timeout_secs)
        try:
            self._call(self._ensure_stream, what=f"create stream {stream}")
        except BaseException:
            self._loop.run(self._nc.close, timeout_secs=5)
            self._loop.stop()
            raise
        self._loop.call_soon(self._spawn, self._heartbeat())
        atexit.register(self.close)
        log.info("dramatiq broker connected", extra={"url": self._safe_url, "stream": stream, "prefix": subject_prefix})

    # -- dramatiq's Broker API -------------------------------------------------

    def consume(self, queue_name: str, prefetch: int = 1, timeout: int = 5000) -> Consumer:
        """A consumer of ``queue_name`` holding at most ``prefetch`` unacked messages.

        ``timeout`` is how long (ms) one iteration waits before yielding ``None``.
        Raises :class:`dramatiq.errors.QueueNotFound` for an undeclared queue.
        """
        if queue_name not in self.queues and queue_name not in self.delay_queues:
            raise QueueNotFound(queue_name)
        self._call(lambda: self._ensure_consumer(queue_name), what=f"declare consumer of {queue_name}")
        from ._consumer import JetStreamConsumer

        consumer = JetStreamConsumer(self, queue_name, prefetch=prefetch, timeout_ms=timeout)
        self._consumers.add(consumer)
        return consumer

    def declare_queue(self, queue_name: str) -> None:
        """Declare ``queue_name`` and its delay queue: durable consumers for both."""
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
        for name in (queue_name, delayed):
            self._call(lambda n=name: self._ensure_consumer(n), what=f"declare queue {name}")
        self.queues.add(queue_name)
        self.emit_after("declare_queue", queue_name)
        self.delay_queues.add(delayed)
        self.emit_after("declare_delay_queue", delayed)

    def enqueue(self, message: Message, *, delay: int | None = None) -> Message:
        """Publish ``message`` on its queue, or on the delay queue with an ``eta``.

        Returns once JetStream stored it. ``delay`` is in milliseconds.
        """
        if delay is not None:
            message = message.copy(queue_name=dq_name(message.queue_name),
                                   options={"eta": current_millis() + delay})
        subject = queue_subject(self.subject_prefix, message.queue_name)
        self.emit_before("enqueue", message, delay)
        data = message.encode()
        headers = {"Nats-Msg-Id": dedup_id(message)}
        self._call(lambda: self._js.publish(subject, data, headers=headers, stream=self.stream),
                   what=f"enqueue on {message.queue_name}")
        self.emit_after("enqueue", message, delay)
        return message

    def get_declared_queues(self) -> set[str]:
        """The queues declared on this broker (not their delay queues)."""
        return self.queues.copy()

    def flush(self, queue_name: str) -> None:
        """Drop every message waiting on ``queue_name`` and its delay queue."""
        for name in (queue_name, dq_name(queue_name)):
            subject = queue_subject(self.subject_prefix, name)
            self._call(lambda s=subject: self._js.purge_stream(self.stream, subject=s), what=f"flush {name}")

    def flush_all(self) -> None:
        """Drop every message of every declared queue, dead letters included."""
        for queue_name in self.queues:
            self.flush(queue_name)
            subject = queue_subject(self.subject_prefix, xq_name(queue_name))
            self._call(lambda s=subject: self._js.purge_stream(self.stream, subject=s),
                       what=f"flush {xq_name(queue_name)}")

    def join(self, queue_name: str, *, timeout: int | None = None, interval: int = 50) -> None:
        """Wait until ``queue_name`` and its delay queue hold no message, pending or unacked.

        ``timeout`` and ``interval`` are in milliseconds. Raises
        :class:`dramatiq.errors.QueueJoinTimeout` when the timeout elapses.
        """
        if queue_name not in self.queues:
            raise QueueNotFound(queue_name)
        deadline = None if timeout is None else time.monotonic() + timeout / 1000
        # Queue, then delay queue, then queue again: a due message moves
        # from the DQ to the queue before the DQ copy is acked.
        names = (queue_name, dq_name(queue_name), queue_name)
        while not all(self.backlog(name) == 0 for name in names):
            if deadline is not None and time.monotonic() >= deadline:
                raise QueueJoinTimeout(queue_name)
            time.sleep(interval / 1000)

    def close(self) -> None:
        """Requeue what this process still holds, flush acks, disconnect, stop the loop thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        for consumer in list(self._consumers):
            consumer.close()
        try:
            self._loop.run(self._shutdown, timeout_secs=self._op_timeout_secs + 5)
        except Exception as e:
            log.warning("dramatiq broker did not close cleanly", extra={"error": repr(e), "stream": self.stream})
        self._loop.stop()
        log.info("dramatiq broker closed", extra={"stream": self.stream})

    # -- beyond dramatiq's API -------------------------------------------------

    def backlog(self, queue_name: str) -> int:
        """Messages of ``queue_name`` not yet acked: pending plus delivered-unacked."""
        info = self._call(lambda: self._js.consumer_info(self.stream, durable_name(queue_name)),
                          what=f"read consumer of {queue_name}")
        return (info.num_pending or 0) + (info.num_ack_pending or 0)

    def dead_letters(self, queue_name: str, *, limit: int = 1000) -> list[Message]:
        """The dead-lettered messages of ``queue_name``, oldest first (read, not consumed)."""
        subject = queue_subject(self.subject_prefix, xq_name(queue_name))

        async def read() -> list[bytes]:
            found, seq = [], 1
            while len(found) < limit:
                try:
                    raw = await self._js.get_msg(self.stream, seq=seq, subject=subject, next=True)
                except nats.js.errors.NotFoundError:
                    break
                found.append(raw.data)
                seq = raw.seq + 1
            return found

        messages = []
        for data in self._call(read, what=f"read dead letters of {queue_name}"):
            try:
                messages.append(Message.decode(data))
            except Exception:
                log.warning("undecodable dead letter", extra={"queue": queue_name, "bytes": len(data)})
        return messages

    # -- used by JetStreamConsumer ---------------------------------------------

    def _call(self, factory: Callable[[], Awaitable[T]], *, what: str) -> T:
        """Run a coroutine on the loop; translate nats-py errors."""
        try:
            return self._loop.run(factory, timeout_secs=self._op_timeout_secs + 1)
        except nats.js.errors.NoStreamResponseError as e:
            raise BrokerUnavailable(f"{what}: no JetStream stream answered at {self._safe_url} - is stream"
                                    f" {self.stream} deleted or JetStream disabled?") from e
        except nats.js.errors.APIError as e:
            raise BrokerRejected(f"{what}: JetStream refused: {e.description} (code {e.err_code})") from e
        except (TimeoutError, nats.errors.Error, OSError) as e:
            raise BrokerUnavailable(f"{what}: NATS at {self._safe_url} did not answer ({e!r})"
                                    " - is nats-server running?") from e
        except RuntimeError as e:
            raise BrokerUnavailable(f"{what}: {e}") from e

    def _post(self, subject: str, payload: bytes, reply: str = "") -> None:
        """Publish fire-and-forget from any thread (acks, naks, pull requests), in order."""
        with self._lock:
            self._outbox.append((subject, payload, reply))
            if self._outbox_scheduled:
                return
            self._outbox_scheduled = True
        self._loop.call_soon(self._spawn, self._drain_outbox())

    def _track(self, reply: str) -> None:
        with self._lock:
            self._in_flight[reply] = None

    def _settle(self, reply: str, payload: bytes) -> None:
        """Ack or nak one delivery and stop its heartbeats."""
        with self._lock:
            self._in_flight.pop(reply, None)
        self._post(reply, payload)

    def _pull(self, durable: str, inbox: str, batch: int, expires_secs: float) -> None:
        request = json.dumps({"batch": batch, "expires": int(expires_secs * 1e9)}).encode()
        self._post(f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{durable}", request, inbox)

    def _subscribe(self, callback: Callable[[Msg], Awaitable[None]]):
        """A fresh inbox subscription for one consumer's pull replies."""
        async def sub():
            return await self._nc.subscribe(self._nc.new_inbox(), cb=callback)
        return self._call(sub, what="subscribe")

    def _unsubscribe(self, sub) -> None:
        try:
            self._call(sub.unsubscribe, what="unsubscribe")
        except Exception as e:
            log.debug("unsubscribe failed", extra={"error": repr(e)})

    def _dead_letter(self, queue_name: str, data: bytes, *, reason: str, key: str) -> None:
        """Store ``data`` on the XQ of ``queue_name``, kept for ``dead_message_ttl_ms``."""
        subject = queue_subject(self.subject_prefix, xq_name(queue_name))
        headers = {"Nats-Msg-Id": f"{key}:{xq_name(queue_name)}", "Dramatiq-Reason": reason[:1024]}
        ttl_secs = max(1, self.dead_message_ttl_ms // 1000)
        self._call(lambda: self._js.publish(subject, data, headers=headers, stream=self.stream,
                                            msg_ttl=ttl_secs),
                   what=f"dead-letter on {xq_name(queue_name)}")
        log.warning("message dead-lettered", extra={"queue": queue_name, "reason": reason[:200]})

    # -- on the loop thread ----------------------------------------------------

    def _spawn(self, coro) -> None:
        task = self._loop.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain_outbox(self) -> None:
        with self._lock:
            items, self._outbox = self._outbox, []
            self._outbox_scheduled = False
        for subject, payload, reply in items:
            try:
                await self._nc.publish(subject, payload, reply=reply)
            except Exception as e:
                log.warning("publish to NATS failed", extra={"subject": subject, "error": repr(e)})

    async def _heartbeat(self) -> None:
        interval = max(self.ack_wait_secs / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            with self._lock:
                replies = list(self._in_flight)
            if not self._nc.is_connected:
                continue
            for reply in replies:
                try:
                    await self._nc.publish(reply, _WPI)
                except Exception as e:
                    log.warning("heartbeat failed", extra={"error": repr(e)})
                    break

    async def _connect(self, servers: str | list[str], timeout_secs: float):
        # nats-py retries an unreachable server forever when reconnects are
        # unlimited, so the first connection gets its own deadline.
        try:
            return await asyncio.wait_for(
                connect(servers, name=f"dramatiq-{self.stream}", connect_timeout_secs=timeout_secs),
                timeout_secs)
        except asyncio.TimeoutError as e:
            raise TransientError(f"cannot reach NATS at {self._safe_url}: no answer within {timeout_secs}s"
                                 " - start it with `fleet nats` or check the URL") from e

    async def _ensure_stream(self) -> None:
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self.subject_prefix}.>"],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            num_replicas=self._replicas,
            duplicate_window=self._duplicate_window_secs,
            allow_msg_ttl=True,
        )
        try:
            info = await self._js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            await self._js.add_stream(config)
            log.info("stream created", extra={"stream": self.stream, "subjects": config.subjects})
            return
        if info.config.retention != RetentionPolicy.WORK_QUEUE:
            raise ConfigError(f"stream {self.stream} exists with retention {info.config.retention};"
                              " the dramatiq broker needs workqueue - pick another stream name")
        if not info.config.allow_msg_ttl or info.config.duplicate_window != config.duplicate_window:
            await self._js.update_stream(config)
            log.info("stream updated", extra={"stream": self.stream})

    async def _ensure_consumer(self, queue_name: str) -> None:
        durable = durable_name(queue_name)
        await self._js.add_consumer(self.stream, ConsumerConfig(
            name=durable,
            durable_name=durable,
            description=f"dramatiq queue {queue_name}",
            filter_subject=queue_subject(self.subject_prefix, queue_name),
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait_secs,
            max_deliver=-1,
            max_ack_pending=self._max_ack_pending,
        ))

    async def _shutdown(self) -> None:
        with self._lock:
            self._outbox.extend((reply, _NAK, "") for reply in self._in_flight)
            self._in_flight.clear()
        await self._drain_outbox()
        for task in list(self._tasks):
            if task is not asyncio.current_task() and not task.done():
                task.cancel()
        try:
            await self._nc.flush(timeout=self._op_timeout_secs)
        finally:
            await self._nc.close()
