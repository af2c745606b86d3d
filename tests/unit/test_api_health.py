"""The api's /metrics text, rendered from a health report."""

from __future__ import annotations

from ops.api.health import render_metrics
from ops.health import Component, HealthReport


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
