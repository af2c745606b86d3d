"""The live /metrics of a running fleet passes Prometheus' own checks: promtool and its Python parser."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ops.embedded import free_port
from tests.support.cli import fleet_cmd, settings_env
from tests.support.http import get
from tests.support.wait import wait_until

#: family -> type that a fleet which ingested, projected and answered a query must expose
EXPECTED = {
    "fleet_ingest_events": "counter",
    "fleet_ingest_batch_commit_seconds": "histogram",
    "fleet_projector_events": "counter",
    "fleet_projector_batch_duration_seconds": "histogram",
    "fleet_projector_lag": "gauge",
    "fleet_api_query_requests": "counter",
    "fleet_api_query_duration_seconds": "histogram",
    "fleet_healthy": "gauge",
    "fleet_ready": "gauge",
    "fleet_component_healthy": "gauge",
    "fleet_heartbeat_age_seconds": "gauge",
    "fleet_projection_lag": "gauge",
    "fleet_log_head": "gauge",
    "fleet_quarantine_open": "gauge",
}


def _scrape_with_every_process(url: str) -> bytes | None:
    """``/metrics`` once ingest, worker and api metrics (with histogram buckets) are all in it."""
    status, body = get(url)
    wanted = (b'fleet_ingest_batch_commit_seconds_bucket{le="+Inf",process="ingest"',
              b'fleet_projector_events_total{outcome="applied",process="worker"',
              b'fleet_api_query_duration_seconds_bucket{', b'fleet_projection_lag{projection="graph"')
    return body if status == 200 and all(w in body for w in wanted) else None


def test_live_metrics_pass_promtool_and_parse_into_one_family_per_name(settings):
    """nats, ingest, worker and api running: /metrics has HELP and TYPE for every metric, each
    family once and whole, counters in _total, seconds not ms, real histograms, a fleet_ prefix;
    `promtool check metrics` finds nothing to say."""
    port = free_port()
    env = settings_env(settings, FLEET_API_PORT=str(port), FLEET_HEARTBEAT_INTERVAL_SECS="1",
                       FLEET_EXPECTED_PROCESSES="ingest,worker,api")
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    logs = {name: settings.data_dir / f"{name}.log" for name in ("ingest", "worker", "api")}
    procs = [subprocess.Popen(fleet_cmd(name), env=env, stdout=subprocess.DEVNULL, stderr=path.open("wb"))
             for name, path in logs.items()]
    base = f"http://127.0.0.1:{port}"

    def state() -> str:
        """What /metrics answers and how each process's log ends (for a wait that timed out)."""
        return f"/metrics: {get(base + '/metrics')[1][-2000:]!r}\n" + "\n".join(
            f"{name}: {path.read_text()[-1500:]}" for name, path in logs.items())
    try:
        subprocess.run(fleet_cmd("simulate", "--events", "300", "--seed", "3"), env=env, check=True,
                       capture_output=True, timeout=60)
        # the graph is there once a query answers, and the api has latencies of its own
        asyncio.run(wait_until(lambda: get(base + "/graph/counts")[0] == 200, timeout_secs=60,
                               interval_secs=0.2, message=state))
        # the first version was built by a rebuild; these the live projector applies in batches
        subprocess.run(fleet_cmd("simulate", "--events", "100", "--seed", "4"), env=env, check=True,
                       capture_output=True, timeout=60)
        text = asyncio.run(wait_until(lambda: _scrape_with_every_process(base + "/metrics"),
                                      timeout_secs=60, interval_secs=0.3,
                                      message=state)).decode()
        with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()

    families: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in families, f"{family.name} split into more than one family"
        families[family.name] = family.type
        assert family.name.startswith("fleet_"), family.name
        assert family.documentation, f"{family.name} has no HELP"
        for sample in family.samples:
            if family.type == "counter":
                assert sample.name == family.name + "_total", sample
            if family.type == "histogram":
                assert sample.name in {f"{family.name}_{s}" for s in ("bucket", "count", "sum")}, sample
    missing = {name: kind for name, kind in EXPECTED.items() if families.get(name) != kind}
    assert not missing, f"missing or of another type: {missing}; exposed: {families}"
    assert "milliseconds" not in text and "_ms" not in text
    assert text.count("# TYPE ") == text.count("# HELP ") == len(families)

    if shutil.which("promtool") is None:
        pytest.skip("promtool not found: install Debian's `prometheus` package (.ci/run does)")
    result = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True,
                            check=False, timeout=30)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert not (result.stdout + result.stderr).strip(), "promtool has remarks:\n" + (
        result.stdout + result.stderr).decode()
