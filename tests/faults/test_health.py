"""Fleet health names a process killed with kill -9 (real processes, real nats-server)."""

from __future__ import annotations

import asyncio
import signal
import subprocess

import pytest

from tests.support.cli import fleet_cmd, fleet_health, healthy_report, settings_env
from tests.support.wait import wait_until


def names_ingest_down(env) -> bool:
    """`fleet health` exits 1 naming ingest down."""
    result = fleet_health(env)
    return result.returncode == 1 and b"ingest (down)" in result.stderr


@pytest.mark.slow
def test_a_killed_ingest_process_is_named_within_seconds(settings):
    """Real processes: healthy while ingest runs, then kill -9 and health names it down."""
    env = settings_env(settings, FLEET_HEARTBEAT_INTERVAL_SECS="1", FLEET_HEARTBEAT_STALE_SECS="3",
                       FLEET_EXPECTED_PROCESSES="ingest")
    proc = subprocess.Popen(fleet_cmd("ingest"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        report = asyncio.run(wait_until(lambda: healthy_report(env), timeout_secs=30, interval_secs=0.3,
                                        message=lambda: fleet_health(env, "--json").stdout.decode()))
        states = {c["name"]: c["state"] for c in report["components"]}
        assert states["ingest"] == "ok" and states["nats"] == "ok"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    asyncio.run(wait_until(lambda: names_ingest_down(env), timeout_secs=15, interval_secs=0.3,
                           message=lambda: fleet_health(env).stdout.decode()))
