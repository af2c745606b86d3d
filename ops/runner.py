"""Run a long-lived coroutine with signal handling (SIGTERM/SIGINT -> graceful stop)."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import signal
import sys
from typing import Awaitable, Callable, TypeVar

__all__ = ["arm_stop_watchdog", "block_stop_signals", "run_until_signal", "wait_for_stop_signal"]

_STOP = {signal.SIGTERM, signal.SIGINT}
#: a graceful stop that takes longer than this prints every thread's stack
STOP_WATCHDOG_SECS = 20.0

log = logging.getLogger("fleet.runner")


def arm_stop_watchdog(secs: float | None = None) -> None:
    """After a stop signal: if the process is still here ``secs`` later, dump all stacks.

    A graceful stop finishes the work in hand and exits; one that hangs is a
    bug, and the stacks on stderr say where (the process keeps waiting: the
    supervisor's own kill timeout decides what happens next).
    """
    secs = STOP_WATCHDOG_SECS if secs is None else secs
    log.info("stopping", extra={"watchdog_secs": secs})
    faulthandler.dump_traceback_later(secs, exit=False, file=sys.stderr)


def block_stop_signals() -> None:
    """Block SIGTERM/SIGINT in this thread and the threads it starts from now on.

    Call before starting worker threads, then :func:`wait_for_stop_signal`.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP)


def wait_for_stop_signal() -> int:
    """Wait until SIGTERM or SIGINT arrives (they must be blocked); return it."""
    sig = signal.sigwait(_STOP)
    arm_stop_watchdog()
    return sig

T = TypeVar("T")


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[T]]) -> T:
    """Run ``main(stop)`` on a new event loop; SIGTERM or SIGINT sets ``stop``."""

    async def runner() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            if not stop.is_set():
                arm_stop_watchdog()
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        return await main(stop)

    return asyncio.run(runner())
