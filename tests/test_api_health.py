"""The api's /readyz and /metrics against real processes and a NATS that stops and returns."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from ops.api.health import render_metrics
from ops.embedded import NatsServer, free_port
from ops.health import Component, HealthReport
from tests.conftest import fleet_cmd


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError:
        return 0, b""


def poll(url: str, status: int, timeout: float = 30, needle: bytes = b"") -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        code, body = get(url)
        if code == status and needle in body:
            return body
        assert time.monotonic() < deadline, f"{url} answered {code}, wanted {status}: {body[:500]!r}"
        time.sleep(0.2)


def test_metrics_render_process_snapshots_and_fleet_gauges():
    """Each process's snapshot gets a process label; health becomes gauges."""
    report = HealthReport(
        (Component("ingest", "process", "ok", data={"last_heartbeat": 99.0}),
         Component("log", "log", "ok", data={"head": 42, "quarantine_open": 1})),
        at=100.0,
        metrics={"ingest": {'fleet_ingest_events{outcome="appended"}': 5, "fleet_ingest_batch_commit_count": 2}},
    )
    text = render_metrics(report)
    assert 'fleet_ingest_events{process="ingest",outcome="appended"} 5' in text
    assert 'fleet_ingest_batch_commit_count{process="ingest"} 2' in text
    assert 'fleet_heartbeat_age_seconds{process="ingest"} 1.000' in text
    assert "fleet_log_head 42" in text and "fleet_quarantine_open 1" in text and "fleet_healthy 1" in text


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
        poll(base + "/readyz", 200)
        assert get(base + "/healthz")[0] == 200
        metrics = poll(base + "/metrics", 200, needle=b'fleet_heartbeat_age_seconds{process="ingest"}')
        assert b'fleet_component_healthy{kind="process",name="api",state="ok"} 1' in metrics

        server.stop(kill=True)
        body = json.loads(poll(base + "/readyz", 503))
        assert any(p.startswith("nats") for p in body["problems"])
        assert get(base + "/healthz")[0] == 200  # alive, even without NATS

        server.start()
        poll(base + "/readyz", 200)
    finally:
        for proc in (api, ingest):
            proc.send_signal(signal.SIGTERM)
        for proc in (api, ingest):
            proc.wait(30)
        server.stop()
    assert api.returncode == 0 and ingest.returncode == 0
