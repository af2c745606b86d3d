"""One NATS connection on the broker's private event-loop thread, usable from any thread.

Blocking calls (publish with ack, stream and consumer info) go through
:meth:`NatsLink.call`, which also translates nats-py errors. Acks, naks and
pull requests are fire-and-forget through an ordered outbox drained on the
loop. Deliveries a process holds are kept alive with ``+WPI`` heartbeats
until they are settled, so only a crashed process's messages time out.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import nats.errors
import nats.js.errors
from nats.aio.msg import Msg

from events.errors import TransientError
from workers.broker._loop import LoopThread
from workers.broker.errors import BrokerRejected, BrokerUnavailable
from workers.broker.layout import NAK, WPI
from workers.natsio.client import connect

__all__ = ["NatsLink"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class NatsLink:
    """A connected NATS client plus the loop thread that runs it.

    ``url`` is only used in messages and must already be redacted.
    """

    def __init__(self, servers: str | list[str], *, url: str, name: str, connect_timeout_secs: float,
                 op_timeout_secs: float, heartbeat_secs: float) -> None:
        self.url = url
        self._op_timeout_secs = op_timeout_secs
        self._heartbeat_secs = heartbeat_secs
        self._lock = threading.Lock()
        self._in_flight: dict[str, None] = {}  # reply subjects of held deliveries
        self._outbox: list[tuple[str, bytes, str]] = []
        self._outbox_scheduled = False
        self._tasks: set[asyncio.Task] = set()
        self._loop = LoopThread(name)
        try:
            self.nc = self._loop.run(lambda: self._connect(servers, name, connect_timeout_secs),
                                     timeout_secs=connect_timeout_secs + 5)
        except BaseException:
            self._loop.stop()
            raise
        self.js = self.nc.jetstream(timeout=op_timeout_secs)
        self._loop.call_soon(self._spawn, self._heartbeat())

    def call(self, factory: Callable[[], Awaitable[T]], *, what: str) -> T:
        """Run ``factory()`` on the loop and return its result; ``what`` names it in errors."""
        try:
            return self._loop.run(factory, timeout_secs=self._op_timeout_secs + 1)
        except nats.js.errors.NoStreamResponseError as e:
            raise BrokerUnavailable(f"{what}: no JetStream stream answered at {self.url}"
                                    " - is the stream deleted or JetStream disabled?") from e
        except nats.errors.MaxPayloadError as e:
            raise BrokerRejected(f"{what}: message larger than the server's max_payload"
                                 " - send a reference to the data instead") from e
        except nats.js.errors.APIError as e:
            raise BrokerRejected(f"{what}: JetStream refused: {e.description} (code {e.err_code})") from e
        except (TimeoutError, nats.errors.Error, OSError) as e:
            raise BrokerUnavailable(f"{what}: NATS at {self.url} did not answer ({e!r})"
                                    " - is nats-server running?") from e
        except RuntimeError as e:
            raise BrokerUnavailable(f"{what}: {e}") from e

    def post(self, subject: str, payload: bytes, reply: str = "") -> None:
        """Publish without waiting, from any thread; posts leave in order."""
        with self._lock:
            self._outbox.append((subject, payload, reply))
            if self._outbox_scheduled:
                return
            self._outbox_scheduled = True
        self._loop.call_soon(self._spawn, self._drain_outbox())

    def track(self, reply: str) -> None:
        """Start heartbeating a delivery this process holds."""
        with self._lock:
            self._in_flight[reply] = None

    def settle(self, reply: str, payload: bytes) -> None:
        """Ack or nak a delivery and stop its heartbeats."""
        with self._lock:
            self._in_flight.pop(reply, None)
        self.post(reply, payload)

    def subscribe(self, callback: Callable[[Msg], Awaitable[None]]):
        """A subscription on a fresh inbox; ``callback`` runs on the loop thread."""
        async def sub():
            return await self.nc.subscribe(self.nc.new_inbox(), cb=callback)
        return self.call(sub, what="subscribe")

    def unsubscribe(self, sub) -> None:
        """Drop a subscription; a failure only matters to the server, which forgets it anyway."""
        try:
            self.call(sub.unsubscribe, what="unsubscribe")
        except Exception as e:
            log.debug("unsubscribe failed", extra={"error": repr(e)})

    def close(self) -> None:
        """Nak held deliveries, send what the outbox holds, disconnect, stop the loop thread."""
        try:
            self._loop.run(self._shutdown, timeout_secs=self._op_timeout_secs + 5)
        except Exception as e:
            log.warning("NATS link did not close cleanly", extra={"error": repr(e)})
        self._loop.stop()

    # -- on the loop thread ----------------------------------------------------

    async def _connect(self, servers: str | list[str], name: str, timeout_secs: float):
        # nats-py retries an unreachable server forever when reconnects are
        # unlimited, so the first connection gets its own deadline.
        try:
            return await asyncio.wait_for(connect(servers, name=name, connect_timeout_secs=timeout_secs),
                                          timeout_secs)
        except asyncio.TimeoutError as e:
            raise TransientError(f"cannot reach NATS at {self.url}: no answer within {timeout_secs}s"
                                 " - start it with `fleet nats` or check the URL") from e

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
                await self.nc.publish(subject, payload, reply=reply)
            except Exception as e:
                log.warning("publish to NATS failed", extra={"subject": subject, "error": repr(e)})

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self._heartbeat_secs)
            with self._lock:
                replies = list(self._in_flight)
            if not self.nc.is_connected:
                continue
            for reply in replies:
                try:
                    await self.nc.publish(reply, WPI)
                except Exception as e:
                    log.warning("heartbeat failed", extra={"error": repr(e)})
                    break

    async def _shutdown(self) -> None:
        with self._lock:
            # Redeliver at once what this process still holds, not after ack_wait.
            self._outbox.extend((reply, NAK, "") for reply in self._in_flight)
            self._in_flight.clear()
        await self._drain_outbox()
        for task in list(self._tasks):
            if not task.done():
                task.cancel()
        try:
            if self.nc.is_connected:  # else nothing reaches the server: do not wait for it
                await self.nc.flush(timeout=self._op_timeout_secs)
        finally:
            await self.nc.close()
