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


def test_readiness_names_failed_workers_and_notes_outdated_ones():
    """A failed worker makes the fleet not ready; an outdated one is a note, holding nothing up."""
    from ops.api.health import readiness

    report = HealthReport(
        (Component("worker", "process", "outdated",
                   data={"outdated": "code v2, active v3: deploy the new code or roll back"}),
         Component("worker-b", "process", "failed",
                   data={"failure": "the projector thread died: RuntimeError: disk gone"}),
         Component("projection graph v3", "projection", "ok", data={"lag": 5})),
        at=100.0, metrics={})
    problems, notes = readiness(report, max_lag=1000)
    assert problems == ["worker-b: the projector thread died: RuntimeError: disk gone"]
    assert notes == ["worker: outdated: code v2, active v3: deploy the new code or roll back"]
    problems, _ = readiness(report, max_lag=1)
    assert "projection graph v3: lag 5 over 1" in problems
