"""Run a long-lived coroutine with signal handling (SIGTERM/SIGINT -> graceful stop)."""

from __future__ import annotations

import asyncio
import signal
from typing import Awaitable, Callable, TypeVar

__all__ = ["block_stop_signals", "run_until_signal", "wait_for_stop_signal"]

_STOP = {signal.SIGTERM, signal.SIGINT}


def block_stop_signals() -> None:
    """Block SIGTERM/SIGINT in this thread and the threads it starts from now on.

    Call before starting worker threads, then :func:`wait_for_stop_signal`.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)


def wait_for_stop_signal() -> int:
    """Wait until SIGTERM or SIGINT arrives (they must be blocked); return it."""
    return signal.sigwait(_STOP)

T = TypeVar("T")


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run ``main(stop)`` on a new event loop; SIGTERM or SIGINT sets ``stop``."""

    async def runner() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    return asyncio.run(runner())
