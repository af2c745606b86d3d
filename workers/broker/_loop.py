"""A private asyncio event loop on a background thread, driven from sync code.

dramatiq's consumer and worker threads are synchronous while nats-py is
asyncio; the broker owns one loop thread and hands it coroutines.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["LoopThread"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class LoopThread:
    """An event loop running forever on a daemon thread until :meth:`stop`."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = threading.Event()
        self._thread.start()
        self._started.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.set)
        try:
            self.loop.run_forever()
        finally:
            pending = asyncio.all_tasks(self.loop)
            for task in pending:
                task.cancel()
            if pending:
                # Bounded: a task that swallows its cancellation (nats-py does inside a
                # publish) must not keep the process from exiting.
                _, stuck = self.loop.run_until_complete(asyncio.wait(pending, timeout=5))
                if stuck:
                    log.warning("tasks still running at shutdown, abandoned",
                                extra={"tasks": sorted(t.get_name() for t in stuck)})
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()

    @property
    def alive(self) -> bool:
        """Whether the loop thread is still running."""
        return self._thread.is_alive()

    def in_loop_thread(self) -> bool:
        """Whether the caller runs on the loop thread itself."""
        return threading.current_thread() is self._thread

    def run(self, factory: Callable[[], Awaitable[T]], *, timeout_secs: float | None) -> T:
        """Run ``factory()`` on the loop and wait for its result from another thread.

        Raises :class:`TimeoutError` (after cancelling the coroutine) when it
        does not finish within ``timeout_secs``.
        """
        if self.in_loop_thread():
            # Blocking here would wait on ourselves forever.
            raise RuntimeError("blocking broker call made from the broker's own event loop thread")
        if not self.alive:
            raise RuntimeError("the broker's event loop is stopped (broker closed)")

        async def call() -> T:
            return await factory()

        future = asyncio.run_coroutine_threadsafe(call(), self.loop)
        try:
            return future.result(timeout_secs)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"broker operation took longer than {timeout_secs}s") from None

    def call_soon(self, fn: Callable[..., object], *args: object) -> None:
        """Schedule ``fn(*args)`` on the loop from any thread; never blocks."""
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            # The loop is closed: only happens when work races a close().
            log.debug("broker loop closed; dropped a callback", extra={"callback": repr(fn)})

    def stop(self, *, timeout_secs: float = 10) -> None:
        """Stop the loop after the callbacks already scheduled and join the thread."""
        if self._thread.is_alive() and not self.in_loop_thread():
            self.call_soon(self.loop.stop)
            self._thread.join(timeout_secs)
            if self._thread.is_alive():
                log.warning("broker loop thread did not stop", extra={"timeout_secs": timeout_secs})
