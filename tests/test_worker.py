"""The worker process: dramatiq actors over JetStream keep the graph current and publish changes."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time

import pytest

from ops.embedded import free_port
from tests.conftest import fleet_cmd, settings_env
from workers.nats import connect

pytestmark = pytest.mark.slow


def _json(settings, *args, env=None):
    result = subprocess.run(fleet_cmd(*args, "--json"), env=env or settings_env(settings),
                            capture_output=True, timeout=60)
    return result.returncode, json.loads(result.stdout) if result.stdout.strip() else None


def test_worker_builds_applies_and_publishes_from_a_live_stream(settings):
    """First start rebuilds via the rebuild actor; new events are applied and published as changes."""
    env = settings_env(settings, FLEET_HEARTBEAT_INTERVAL_SECS="1", FLEET_EXPECTED_PROCESSES="ingest,worker",
                       FLEET_API_PORT=str(free_port()), FLEET_GRAPH_STREAM=f"GRAPH_{settings.stream}")
    subprocess.run(fleet_cmd("simulate", "--events", "1500", "--seed", "3"), env=env, check=True,
                   capture_output=True, timeout=60)
    ingest = subprocess.Popen(fleet_cmd("ingest"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen(fleet_cmd("worker"), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        def at_head(n):
            code, listing = _json(settings, "projections", env=env)
            versions = listing["versions"] if listing else []
            return any(v["state"] == "active" and v["position"] == n for v in versions)

        deadline = time.monotonic() + 60
        while not at_head(1500):
            if time.monotonic() > deadline:
                worker.kill()
                raise AssertionError(worker.communicate()[1].decode()[:6000])
            time.sleep(0.5)
        subprocess.run(fleet_cmd("simulate", "--events", "2000", "--seed", "3"), env=env, check=True,
                       capture_output=True, timeout=60)  # the first 1500 are duplicates
        while not at_head(2000):
            assert time.monotonic() < deadline, "live events were not applied"
            time.sleep(0.5)
        deadline = time.monotonic() + 30
        while True:
            code, report = _json(settings, "health", env=env)
            states = {c["name"]: c["state"] for c in report["components"]}
            if code == 0:
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.5)
        assert states["worker"] == "ok" and states["projection graph v1"] == "ok"

        async def graph_messages():
            nc = await connect(settings.nats_url, name="test")
            try:
                info = await nc.jetstream().stream_info(f"GRAPH_{settings.stream}")
                return info.state.messages
            finally:
                await nc.close()

        deadline = time.monotonic() + 30
        while asyncio.run(graph_messages()) < 100:
            assert time.monotonic() < deadline, "no graph-change events published"
            time.sleep(0.5)
    finally:
        for proc in (worker, ingest):
            proc.send_signal(signal.SIGTERM)
        for proc in (worker, ingest):
            proc.wait(30)
    assert worker.returncode == 0, worker.stderr.read().decode()[-3000:]
