"""Start-up retries: the back-off is a pure function; steps retry until the deadline or a stop."""

from __future__ import annotations

import asyncio
import time

import pytest

from events.errors import ConfigError, TransientError
from ops.settings import load_settings
from ops.startup import Startup, StartupStopped, StartupTimeout
from workers.natsio.backoff import backoff_secs


def test_backoff_doubles_up_to_the_cap_and_jitters_within_its_upper_half():
    """attempt 1 waits 0.05-0.1 s, then twice as long per attempt, never more than the cap."""
    assert backoff_secs(1, 0.0) == pytest.approx(0.05)
    assert backoff_secs(1, 0.999999) == pytest.approx(0.1, rel=1e-5)
    assert backoff_secs(3, 0.5) == pytest.approx(0.3)  # top 0.4, upper half 0.2-0.4
    for attempt in range(1, 200):
        for rand in (0.0, 0.25, 0.5, 0.999):
            delay = backoff_secs(attempt, rand, base_secs=0.1, cap_secs=5.0)
            top = min(5.0, 0.1 * 2 ** (attempt - 1))
            assert top / 2 <= delay <= top
    assert backoff_secs(10_000, 0.999) <= 5.0


def test_backoff_is_deterministic_and_rejects_nonsense():
    """Same inputs, same delay; attempts count from 1 and the draw lies in [0, 1)."""
    assert backoff_secs(4, 0.3) == backoff_secs(4, 0.3)
    with pytest.raises(ValueError):
        backoff_secs(0, 0.5)
    with pytest.raises(ValueError):
        backoff_secs(1, 1.0)


def _settings(timeout_secs: int = 60):
    return load_settings({}, startup_timeout_secs=timeout_secs)


def test_a_step_is_retried_until_it_succeeds():
    """Transient failures are retried with back-off; the step's result comes back."""
    calls = []

    async def flaky():
        calls.append(time.monotonic())
        if len(calls) < 4:
            raise TransientError("not yet")
        return "up"

    async def main():
        return await Startup(_settings(), asyncio.Event(), rand=lambda: 0.0).step("the thing", flaky)

    assert asyncio.run(main()) == "up"
    assert len(calls) == 4


def test_a_permanent_error_is_not_retried():
    """Bad credentials (ConfigError) stop the start-up at once."""
    calls = []

    async def refused():
        calls.append(1)
        raise ConfigError("refused")

    async def main():
        await Startup(_settings(), asyncio.Event()).step("NATS", refused)

    with pytest.raises(ConfigError):
        asyncio.run(main())
    assert calls == [1]


def test_the_start_up_gives_up_at_the_deadline_naming_what_it_waited_for():
    """After FLEET_STARTUP_TIMEOUT_SECS the last error and the thing waited for are named."""
    async def down():
        raise TransientError("connection refused")

    async def main():
        await Startup(_settings(1), asyncio.Event()).step("NATS at nats://127.0.0.1:9", down)

    started = time.monotonic()
    with pytest.raises(StartupTimeout) as raised:
        asyncio.run(main())
    assert 0.9 < time.monotonic() - started < 3
    assert "gave up after 1s waiting for NATS at nats://127.0.0.1:9: connection refused" in str(raised.value)


def test_a_step_that_hangs_is_cut_at_the_deadline():
    """An attempt that never answers does not outlive the start-up's time."""
    async def hangs():
        await asyncio.sleep(3600)

    async def main():
        await Startup(_settings(1), asyncio.Event()).step("JetStream", hangs)

    started = time.monotonic()
    with pytest.raises(StartupTimeout):
        asyncio.run(main())
    assert time.monotonic() - started < 3


def test_stop_ends_the_wait_at_once():
    """SIGTERM (the stop event) during a hanging attempt or a back-off pause: StartupStopped."""
    async def hangs():
        await asyncio.sleep(3600)

    async def down():
        raise TransientError("refused")

    async def main(step):
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.2, stop.set)
        startup = Startup(_settings(), stop, rand=lambda: 0.999)
        await startup.step("NATS", step)

    for step in (hangs, down):
        started = time.monotonic()
        with pytest.raises(StartupStopped, match="waiting for NATS"):
            asyncio.run(main(step))
        assert time.monotonic() - started < 2
