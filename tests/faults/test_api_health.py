"""The api's /readyz and /metrics against real processes and a NATS that stops and returns."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess

import pytest

from ops.embedded import NatsServer, free_port
from tests.support.cli import fleet_cmd
from tests.support.http import get
from tests.support.wait import wait_until


def answers(url: str, status: int, needle: bytes = b"") -> tuple[int, bytes] | None:
    """``url``'s (status, body) if it answers ``status`` with ``needle`` in the body, else None."""
    code, body = get(url)
    return (code, body) if code == status and needle in body else None


def answered(url: str, status: int) -> str:
    """What ``url`` answers now, for the message of a wait that timed out."""
    code, body = get(url)
    return f"{url} answered {code}, wanted {status}: {body[:500]!r}"


@pytest.mark.slow
def test_readyz_flips_when_nats_stops_and_recovers_when_it_returns(tmp_path):
    """A real api process: ready, NATS killed -> 503 naming nats, NATS back -> ready again."""
    import os

    server = NatsServer(tmp_path / "nats").start()
    port = free_port()
    env = dict(os.environ, FLEET_DATA_DIR=str(tmp_path / "data"), FLEET_NATS_URL=server.url,
               FLEET_API_PORT=str(port), FLEET_HEARTBEAT_INTERVAL_SECS="1",
               FLEET_EXPECTED_PROCESSES="api,ingest")
    api = subprocess.Popen(fleet_cmd("api"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ingest = subprocess.Popen(fleet_cmd("ingest"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(wait_until(lambda: answers(base + "/readyz", 200), timeout_secs=30, interval_secs=0.2,
                               message=lambda: answered(base + "/readyz", 200)))
        assert get(base + "/healthz")[0] == 200
        _, metrics = asyncio.run(wait_until(
            lambda: answers(base + "/metrics", 200, needle=b'fleet_heartbeat_age_seconds{process="ingest"}'),
            timeout_secs=30, interval_secs=0.2, message=lambda: answered(base + "/metrics", 200)))
        assert b'fleet_component_healthy{kind="process",name="api",state="ok"} 1' in metrics

        server.stop(kill=True)
        _, answer = asyncio.run(wait_until(
            lambda: answers(base + "/readyz", 503), timeout_secs=30, interval_secs=0.2,
            message=lambda: answered(base + "/readyz", 503)))
        body = json.loads(answer)
        assert any(p.startswith("nats") for p in body["problems"])
        assert get(base + "/healthz")[0] == 200  # alive, even without NATS

        server.start()
        asyncio.run(wait_until(lambda: answers(base + "/readyz", 200), timeout_secs=30, interval_secs=0.2,
                               message=lambda: answered(base + "/readyz", 200)))
    finally:
        for proc in (api, ingest):
            proc.send_signal(signal.SIGTERM)
        for proc in (api, ingest):
            proc.wait(30)
        server.stop()
    assert api.returncode == 0 and ingest.returncode == 0
