"""Run a long-lived coroutine with signal handling (SIGTERM/SIGINT -> graceful stop)."""

from __future__ import annotations

import asyncio
import signal
from typing import Awaitable, Callable, TypeVar

__all__ = ["run_until_signal"]

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
