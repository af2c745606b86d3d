"""The JetStream consumer behind ``JetStreamBroker.consume``.

One inbox subscription per consumer; pull requests ask for at most the free
prefetch credit (``prefetch`` minus messages buffered or being worked on) and
expire after the consumer's idle timeout, so at most one request is open. The
loop thread only appends arrivals to a buffer; dramatiq's consumer thread
waits on a condition for a message, for credit, or for the timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

from dramatiq.broker import Consumer, MessageProxy
from dramatiq.errors import DecodeError
from dramatiq.message import Message
from nats.aio.msg import Msg

from workers.broker.errors import BrokerUnavailable
from workers.broker.layout import ACK, NAK

if TYPE_CHECKING:
    from workers.broker.jetstream import JetStreamBroker

__all__ = ["JetStreamConsumer", "JetStreamMessage"]

log = logging.getLogger(__name__)

# A pull request the server never answered (lost in a reconnect) is given up
# this long after its expiry.
_LOST_REQUEST_GRACE_SECS = 1.0
# Status codes that end a pull request: no messages, expired, and 409s
# (max waiting, leadership change, ...) that a new request can fix.
_REQUEST_DONE = {"404", "408", "409"}


class JetStreamMessage(MessageProxy):
    """A dramatiq message delivered by JetStream.

    ``redelivered`` is true when JetStream delivered it before (a crash, a
    requeue); ``stream_seq`` is its sequence in the stream.
    """

    def __init__(self, message: Message, *, reply: str, stream_seq: int, redelivered: bool,
                 owner: "JetStreamConsumer") -> None:
        super().__init__(message)
        self.redelivered = redelivered
        self.stream_seq = stream_seq
        self._reply = reply
        self._owner = owner


class JetStreamConsumer(Consumer):
    """Iterates over one queue's durable consumer, yielding ``None`` when idle."""

    def __init__(self, broker: "JetStreamBroker", queue_name: str, *, prefetch: int, timeout_ms: int) -> None:
        self.queue_name = queue_name
        self.prefetch = max(1, prefetch)
        self._min_batch = max(1, self.prefetch // 2)
        self._broker = broker
        self._link = broker._link
        self._timeout_secs = max(timeout_ms, 50) / 1000
        self._cond = threading.Condition()
        self._buffer: deque[Msg] = deque()
        self._working: set[str] = set()
        self._request_open = False
        self._request_left = 0
        self._request_deadline = 0.0
        self._broken: str | None = None
        self._closed = False
        self._sub = self._link.subscribe(self._on_msg)

    # -- dramatiq's Consumer API -----------------------------------------------

    def __next__(self) -> JetStreamMessage | None:
        deadline = time.monotonic() + self._timeout_secs
        while True:
            with self._cond:
                while True:
                    if self._broken:
                        self._release_delayed()
                        raise BrokerUnavailable(self._broken)
                    if self._closed:
                        raise BrokerUnavailable(f"the consumer of {self.queue_name} is closed")
                    if self._buffer:
                        msg = self._buffer.popleft()
                        self._working.add(msg.reply)
                        break
                    self._maybe_pull()
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    self._cond.wait(remaining)
            proxy = self._wrap(msg)
            if proxy is not None:
                return proxy

    def ack(self, message: JetStreamMessage) -> None:
        """Acknowledge: JetStream deletes the message (work-queue retention)."""
        message._owner._settle(message._reply, ACK)

    def nack(self, message: JetStreamMessage) -> None:
        """Dead-letter: store the message on the XQ, then ack the original."""
        reason = repr(message._exception) if message._exception is not None else "rejected"
        self._broker._dead_letter(self.queue_name, message._message.encode(), reason=reason,
                                  key=f"{message.message_id}:{message.stream_seq}")
        message._owner._settle(message._reply, ACK)

    def requeue(self, messages: Iterable[JetStreamMessage]) -> None:
        """Nak ``messages`` so JetStream redelivers them at once (worker shutdown)."""
        count = 0
        for message in messages:
            message._owner._settle(message._reply, NAK)
            count += 1
        if count:
            log.info("messages requeued", extra={"queue": self.queue_name, "count": count})

    def close(self) -> None:
        """Stop pulling and nak the messages fetched but never handed out."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            unseen = list(self._buffer)
            self._buffer.clear()
            self._cond.notify_all()
        self._link.unsubscribe(self._sub)
        for msg in unseen:
            self._link.settle(msg.reply, NAK)

    # -- internals -------------------------------------------------------------

    def _settle(self, reply: str, payload: bytes) -> None:
        self._link.settle(reply, payload)
        with self._cond:
            self._working.discard(reply)
            self._cond.notify_all()

    def _release_delayed(self) -> None:
        """Nak what a delay-queue consumer holds (caller holds the lock).

        dramatiq's consumer thread drops its in-memory delay queue after a
        connection error, so nobody would ever ack those messages.
        """
        if not self.queue_name.endswith(".DQ"):
            return
        for reply in self._working:
            self._link.settle(reply, NAK)
        self._working.clear()

    def _maybe_pull(self) -> None:
        """Ask for the free credit unless a request is open (caller holds the lock)."""
        now = time.monotonic()
        if self._request_open and now < self._request_deadline:
            return
        credit = self.prefetch - len(self._working) - len(self._buffer)
        # Wait for half the prefetch to free up (unless idle): tiny batches
        # cost a round trip each.
        if credit <= 0 or (credit < self._min_batch and (self._working or self._buffer)):
            return
        self._request_open = True
        self._request_left = credit
        self._request_deadline = now + self._timeout_secs + _LOST_REQUEST_GRACE_SECS
        self._broker._pull(self.queue_name, self._sub.subject, credit, self._timeout_secs)

    def _wrap(self, msg: Msg) -> JetStreamMessage | None:
        meta = msg.metadata
        try:
            message = Message.decode(msg.data)
        except DecodeError as e:
            # Nothing lost, nothing blocks: the raw bytes go to the XQ.
            self._broker._dead_letter(self.queue_name, msg.data, reason=f"undecodable: {e}",
                                      key=f"raw:{meta.sequence.stream}")
            self._settle(msg.reply, ACK)
            return None
        cap = self._broker.max_deliveries
        if cap and meta.num_delivered > cap:
            # Delivered `cap` times and never settled: whatever it does kills or
            # wedges its worker. Keep it on the XQ; don't let it do that again.
            self._broker._dead_letter(
                self.queue_name, msg.data, key=f"{message.message_id}:{meta.sequence.stream}",
                reason=f"delivered {cap} times without being settled (the worker crashed or hung"
                       " each time)")
            self._settle(msg.reply, ACK)
            return None
        return JetStreamMessage(message, reply=msg.reply, stream_seq=meta.sequence.stream,
                                redelivered=meta.num_delivered > 1, owner=self)

    async def _on_msg(self, msg: Msg) -> None:
        """Runs on the loop thread for every reply to this consumer's pull requests."""
        status = _header(msg, "Status")
        if status is None and not msg.reply:
            return
        with self._cond:
            if status is None:
                if self._closed:
                    self._link.post(msg.reply, NAK)
                    return
                self._buffer.append(msg)
                self._link.track(msg.reply)
                self._request_left -= 1
                if self._request_left <= 0:
                    self._request_open = False
            elif status == "100":
                return
            elif status in _REQUEST_DONE:
                self._request_open = False
                if status == "409" and "deleted" in (_header(msg, "Description") or "").lower():
                    self._broken = f"the JetStream consumer of {self.queue_name} was deleted"
            else:
                self._request_open = False
                self._broken = (f"pulling {self.queue_name} failed with status {status}"
                                f" {_header(msg, 'Description') or ''}".strip())
            self._cond.notify_all()


def _header(msg: Msg, name: str) -> str | None:
    """A header value; nats-py keys some status headers by a ``str`` enum."""
    if not msg.headers:
        return None
    for key, value in msg.headers.items():
        if getattr(key, "value", key) == name:
            return value
    return None
