"""Start-up: wait for NATS and the JetStream resources a process needs, bounded, with back-off.

A long-lived process (ingest, worker, api, change publisher) may start
before NATS does (the Procfile starts everything at once) or while it
restarts. Each start-up step (connect, streams, the heartbeat bucket) is
retried with jittered exponential back-off until ``FLEET_STARTUP_TIMEOUT_SECS``
have passed since the process began waiting; then :class:`StartupTimeout`
(exit 3) names what it waited for. SIGTERM while waiting raises
:class:`StartupStopped`, which the CLI turns into a clean exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Awaitable, Callable, Sequence, TypeVar

import nats.errors
from nats.aio.client import Client

from events.errors import PermanentError, TransientError
from workers.natsio.backoff import backoff_secs
from workers.natsio.client import connect, redact_url
from workers.natsio.heartbeat import HEARTBEAT_BUCKET, heartbeat_bucket
from workers.natsio.streams import StreamSpec, ensure_stream

from .settings import Settings, with_nats_credentials

__all__ = ["Startup", "StartupStopped", "StartupTimeout"]

log = logging.getLogger("fleet.startup")

T = TypeVar("T")

#: what a retry may cure; PermanentError (bad credentials, a refused stream) is raised at once
_TRANSIENT = (TransientError, nats.errors.Error, OSError, asyncio.TimeoutError)
#: one JetStream request's timeout while starting (the step is retried after it)
_REQUEST_TIMEOUT_SECS = 5.0


class StartupTimeout(TransientError):
    """A start-up step did not succeed within FLEET_STARTUP_TIMEOUT_SECS."""


class StartupStopped(Exception):
    """SIGTERM or SIGINT arrived while the process was starting: not an error, exit 0."""


class Startup:
    """One process's start-up: steps retried until a deadline they share, or until ``stop``."""

    def __init__(self, settings: Settings, stop: asyncio.Event, *,
                 rand: Callable[[], float] = random.random) -> None:
        self.settings = settings
        self.stop = stop
        self.timeout_secs = settings.startup_timeout_secs
        self._rand = rand
        self._deadline = asyncio.get_running_loop().time() + self.timeout_secs

    @property
    def remaining_secs(self) -> float:
        """Seconds left before the start-up gives up."""
        return self._deadline - asyncio.get_running_loop().time()

    async def step(self, what: str, attempt_once: Callable[[], Awaitable[T]]) -> T:
        """``attempt_once()`` until it succeeds; ``what`` names it in logs and in the timeout."""
        attempt = 0
        while True:
            if self.stop.is_set():
                raise StartupStopped(f"stopped while waiting for {what}")
            attempt += 1
            try:
                return await self._until_stopped(what, asyncio.wait_for(
                    attempt_once(), max(self.remaining_secs, 0.1)))
            except PermanentError:
                raise
            except _TRANSIENT as e:
                error = e
            remaining = self.remaining_secs
            if remaining <= 0:
                raise StartupTimeout(f"gave up after {self.timeout_secs}s waiting for {what}:"
                                     f" {_describe(error)} - start it, or raise"
                                     " FLEET_STARTUP_TIMEOUT_SECS") from error
            delay = min(backoff_secs(attempt, self._rand()), remaining)
            log.warning("waiting for %s", what, extra={
                "waiting_for": what, "attempt": attempt, "error": _describe(error),
                "retry_in_secs": round(delay, 2), "gives_up_in_secs": round(remaining, 1)})
            try:
                await asyncio.wait_for(self.stop.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def nats(self, name: str, *, streams: Sequence[StreamSpec] = (),
                   heartbeats: bool = True) -> tuple[Settings, Client]:
        """Connect, then make sure ``streams`` and the heartbeat bucket exist.

        Returns the settings with the NATS credentials resolved (with the
        embedded server they may appear only once it runs) and the client.
        """
        resolved = self.settings
        shown = redact_url(self.settings.nats_url)

        async def connect_once() -> Client:
            nonlocal resolved
            resolved = with_nats_credentials(self.settings)
            return await connect(resolved.nats_url, name=name,
                                 connect_timeout_secs=min(5.0, max(self.remaining_secs, 0.5)))

        nc = await self.step(f"NATS at {shown}", connect_once)
        try:
            js = nc.jetstream(timeout=_REQUEST_TIMEOUT_SECS)
            for spec in streams:
                await self.step(f"JetStream stream {spec.name} at {shown}",
                                lambda spec=spec: ensure_stream(js, spec))
            if heartbeats:
                await self.step(f"JetStream key-value bucket {HEARTBEAT_BUCKET} at {shown}",
                                lambda: heartbeat_bucket(js, replicas=self.settings.stream_replicas))
        except BaseException:
            await _close(nc)
            raise
        return resolved, nc

    async def _until_stopped(self, what: str, work: Awaitable[T]) -> T:
        task = asyncio.ensure_future(work)
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if task.done():
            return task.result()
        task.cancel()
        try:
            await task
        except BaseException:  # whatever the abandoned attempt ends with, we are stopping
            pass
        raise StartupStopped(f"stopped while waiting for {what}")


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__


async def _close(nc: Client) -> None:
    try:
        await asyncio.wait_for(nc.close(), 5)
    except Exception as e:  # best effort while failing or stopping
        log.debug("closing NATS after a failed start-up", extra={"error": repr(e)})
