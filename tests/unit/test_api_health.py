"""The api's /metrics text (through prometheus_client) and /readyz body, from a health report."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ops.api.health import readiness
from ops.api.metrics import prometheus_name, render
from ops.health import Component, HealthReport
from workers.natsio.heartbeat import MetricFamily, MetricPoint


def _families(text: str) -> dict[str, object]:
    """Parsed families by name; fails when a name comes twice (samples split apart)."""
    out: dict[str, object] = {}
    for family in text_string_to_metric_families(text):
        assert family.name not in out, f"{family.name} appears twice"
        out[family.name] = family
    return out


def _report(**metrics) -> HealthReport:
    return HealthReport(
        (Component("ingest", "process", "ok", data={"last_heartbeat": 99.0,
                                                    "supervisor": {"restarts": 2, "state": "running"}}),
         Component("worker", "process", "ok", data={"last_heartbeat": 98.5}),
         Component("projection graph v3", "projection", "catching up",
                   data={"name": "graph", "version": 3, "lag": 5000, "checkpoint": 100,
                         "events_per_sec": 250.0, "eta_secs": 20.0},
                   not_ready="projection graph v3: catching up: lag 5,000, 250 events/s, ETA 20s"),
         Component("ingest consumer", "consumer", "ok", data={"pending": 3}),
         Component("log", "log", "ok", data={"head": 5100, "quarantine_open": 1})),
        at=100.0, metrics=metrics)


def _histogram(name: str, unit: str, bounds: list[float], buckets: list[int], total: float,
               **labels: str) -> MetricFamily:
    return MetricFamily(name=name, kind="histogram", unit=unit, description="Latency", points=[
        MetricPoint(labels=labels, count=sum(buckets), sum=total, bounds=bounds, buckets=buckets)])


def test_each_process_metric_is_one_family_with_a_process_label_and_base_units():
    """Counters end in _total, ms histograms become seconds with cumulative buckets, one family
    per name whatever the number of processes."""
    events = MetricFamily(name="fleet.ingest.events", kind="counter", unit="{event}",
                          description="Events handled by ingest", points=[
                              MetricPoint(labels={"outcome": "appended"}, value=5),
                              MetricPoint(labels={"outcome": "duplicate"}, value=1)])
    report = _report(
        ingest=[events, _histogram("fleet.ingest.batch.commit", "ms", [1.0, 10.0], [2, 1, 1], 30.0)],
        worker=[_histogram("fleet.ingest.batch.commit", "ms", [1.0, 10.0], [0, 4, 0], 8.0),
                MetricFamily(name="fleet.projector.lag", kind="gauge", unit="{event}",
                             points=[MetricPoint(labels={"projection": "graph", "version": "3"},
                                                 value=7)])])
    text = render(report).decode()
    families = _families(text)

    counter = families["fleet_ingest_events"]
    assert counter.type == "counter" and counter.documentation == "Events handled by ingest"
    assert {(s.name, s.labels["outcome"], s.value) for s in counter.samples} == {
        ("fleet_ingest_events_total", "appended", 5.0), ("fleet_ingest_events_total", "duplicate", 1.0)}
    assert all(s.labels["process"] == "ingest" for s in counter.samples)

    histogram = families["fleet_ingest_batch_commit_seconds"]
    assert histogram.type == "histogram"
    by = {(s.labels["process"], s.name, s.labels.get("le")): s.value for s in histogram.samples}
    assert by[("ingest", "fleet_ingest_batch_commit_seconds_bucket", "0.001")] == 2
    assert by[("ingest", "fleet_ingest_batch_commit_seconds_bucket", "0.01")] == 3
    assert by[("ingest", "fleet_ingest_batch_commit_seconds_bucket", "+Inf")] == 4
    assert by[("ingest", "fleet_ingest_batch_commit_seconds_sum", None)] == pytest.approx(0.030)
    assert by[("worker", "fleet_ingest_batch_commit_seconds_count", None)] == 4
    assert "_milliseconds" not in text and "_ms" not in text

    lag = families["fleet_projector_lag"]
    assert lag.type == "gauge" and lag.samples[0].labels == {
        "process": "worker", "projection": "graph", "version": "3"}
    # every sample line sits under its own family's # TYPE line (the parser would split it else)
    family = None
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            family = line.split()[2]
        elif not line.startswith("#"):
            assert family and line.startswith(family), (family, line)


def test_health_gauges_carry_help_type_and_the_catch_up_figures():
    """The fleet's own gauges: healthy, ready, per component, heartbeat age, lag, rate and ETA."""
    families = _families(render(_report()).decode())
    for name in ("fleet_healthy", "fleet_ready", "fleet_component_healthy", "fleet_component_ready",
                 "fleet_heartbeat_age_seconds", "fleet_projection_lag", "fleet_log_head",
                 "fleet_quarantine_open", "fleet_ingest_consumer_pending"):
        assert families[name].type == "gauge" and families[name].documentation, name
    value = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert value[("fleet_healthy", ())] == 1 and value[("fleet_ready", ())] == 0
    assert value[("fleet_heartbeat_age_seconds", (("process", "ingest"),))] == 1.0
    assert families["fleet_process_restarts"].type == "counter"  # what `fleet up` did, from its state
    assert value[("fleet_process_restarts_total", (("process", "ingest"),))] == 2
    projection = (("projection", "graph"), ("version", "3"))
    assert value[("fleet_projection_lag", projection)] == 5000
    assert value[("fleet_projection_apply_rate_per_second", projection)] == 250
    assert value[("fleet_projection_eta_seconds", projection)] == 20
    assert value[("fleet_component_ready", (("kind", "projection"), ("name", "projection graph v3"),
                                            ("state", "catching up")))] == 0


def test_a_kind_that_differs_between_processes_keeps_the_first_and_one_family():
    """Two releases that disagree on an instrument's kind do not split or break the exposition;
    nor does an instrument named like a health gauge."""
    report = _report(a=[MetricFamily(name="fleet.x", kind="counter", points=[MetricPoint(value=1)])],
                     b=[MetricFamily(name="fleet.x", kind="gauge", points=[MetricPoint(value=2)])])
    family = _families(render(report).decode())["fleet_x"]
    assert family.type == "counter" and [s.labels["process"] for s in family.samples] == ["a"]
    # an instrument named like a health gauge does not make the name come twice
    report = _report(a=[MetricFamily(name="fleet.log.head", kind="gauge", points=[MetricPoint(value=9)])])
    assert [s.value for s in _families(render(report).decode())["fleet_log_head"].samples] == [5100]


@pytest.mark.parametrize(("name", "unit", "kind", "want"), [
    ("fleet.projector.events", "{event}", "counter", ("fleet_projector_events", "", 1.0)),
    ("fleet.projector.batch.duration", "ms", "histogram", ("fleet_projector_batch_duration_seconds",
                                                           "seconds", 1e-3)),
    ("fleet.api.query.duration", "s", "histogram", ("fleet_api_query_duration_seconds", "seconds", 1.0)),
    ("fleet.projection.rebuild.rate", "{event}/s", "gauge", ("fleet_projection_rebuild_rate_per_second",
                                                             "", 1.0)),
    ("store.size", "By", "gauge", ("fleet_store_size_bytes", "bytes", 1.0)),
    ("fleet.hits.total", "{hit}", "counter", ("fleet_hits", "", 1.0)),
])
def test_prometheus_names_follow_the_conventions(name, unit, kind, want):
    """fleet_ prefix, base units with the factor to them, no _total before the client adds it."""
    assert prometheus_name(name, unit, kind) == want


@pytest.mark.skipif(shutil.which("promtool") is None,
                    reason="promtool not found (Debian package `prometheus`; .ci/run installs it)")
def test_promtool_accepts_the_rendered_text():
    """Prometheus' own linter finds nothing to say about a report with every kind of metric."""
    report = _report(ingest=[
        MetricFamily(name="fleet.ingest.events", kind="counter", unit="{event}", description="Events",
                     points=[MetricPoint(labels={"outcome": "appended"}, value=5)]),
        _histogram("fleet.ingest.batch.commit", "ms", [1.0, 10.0], [2, 1, 1], 30.0)])
    result = subprocess.run(["promtool", "check", "metrics"], input=render(report), capture_output=True, check=False,
                            timeout=30)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), result


def test_readiness_names_failed_workers_and_notes_outdated_ones():
    """A failed worker makes the fleet not ready; an outdated one is a note, holding nothing up."""
    report = HealthReport(
        (Component("worker", "process", "outdated",
                   data={"outdated": "code v2, active v3: deploy the new code or roll back"}),
         Component("worker-b", "process", "failed",
                   data={"failure": "the projector thread died: RuntimeError: disk gone"},
                   not_ready="worker-b: the projector thread died: RuntimeError: disk gone")),
        at=100.0, metrics={})
    body = readiness(report)
    assert body["ready"] is False and body["healthy"] is False
    assert body["problems"] == ["worker-b: the projector thread died: RuntimeError: disk gone"]
    assert body["notes"] == ["worker: outdated: code v2, active v3: deploy the new code or roll back"]
