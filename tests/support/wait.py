"""Waiting on a condition with a deadline: the suite's one poll-until helper."""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any, Callable


async def wait_until(predicate: Callable[[], Any], *, timeout_secs: float, interval_secs: float = 0.05,
                     message: str | Callable[[], object] = "condition not met") -> Any:
    """Call ``predicate`` (sync, or async and awaited) every ``interval_secs`` until it returns
    a truthy value, and return that value; after ``timeout_secs`` raise ``AssertionError``
    with ``message`` (a callable is called then, so it can describe the state at that moment).

    The predicate runs at least once, and once more after the deadline has passed. It runs on
    the caller's event loop, so tasks of that loop go on between calls; from synchronous code
    use ``asyncio.run(wait_until(...))``.
    """
    deadline = time.monotonic() + timeout_secs
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            detail = message() if callable(message) else message
            raise AssertionError(f"{detail} (waited {timeout_secs:g} s)")
        await asyncio.sleep(interval_secs)
