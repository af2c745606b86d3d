"""Fleet health: the pure rules, from heartbeats to component states."""

from __future__ import annotations

import pytest

from ops.health import assess
from workers.natsio.heartbeat import Beat

NOW = 1_000_000.0


def beat(state="ok", at=NOW - 1, **details) -> Beat:
    return Beat(process="p", state=state, at=at, started_at=NOW - 100, pid=1, host="h",
                interval_secs=2, details=details)


def judge(beats, expected=("ingest",), nats_ok=True, **kw):
    report = assess(now=NOW, nats_ok=nats_ok, nats_detail="", expected=expected, beats=beats,
                    consumer_pending=0, log_head=10, quarantine_open=0, **kw)
    return report, {c.name: c.state for c in report.components}


@pytest.mark.parametrize(
    ("the_beat", "state", "healthy"),
    [
        (beat(), "ok", True),
        (beat("starting"), "starting", False),
        (beat("rebuilding"), "rebuilding", True),
        (beat(at=NOW - 60), "down", False),
        (beat("stopped"), "down", False),
        (beat(backlog=500, progress_at=NOW - 120), "stuck", False),
        (beat(backlog=0, progress_at=NOW - 120), "ok", True),
    ],
)
def test_each_process_state_follows_from_its_heartbeat(the_beat, state, healthy):
    """Fresh, stale, stopped, starting, rebuilding and stuck heartbeats map to their states."""
    report, states = judge({"ingest": the_beat})
    assert states["ingest"] == state
    assert report.ok is healthy


def test_a_process_that_never_wrote_a_heartbeat_is_never_started():
    """An expected process with no key at all is reported as never started."""
    report, states = judge({}, expected=("ingest", "worker"))
    assert states["worker"] == "never started" and not report.ok
    assert {c.name for c in report.culprits} == {"ingest", "worker"}


def test_ingest_rewinds_show_in_its_line_and_keep_it_healthy():
    """A rewind recovers lost deliveries: worth a note to the operator, not an alarm."""
    report, states = judge({"ingest": beat(rewinds=2)})
    line = next(c for c in report.components if c.name == "ingest")
    assert states["ingest"] == "ok" and report.ok
    assert "consumer rewound 2x since start" in line.detail


def test_stream_messages_gone_before_ingest_read_them_show_in_its_line():
    """Messages a stream's limits dropped unread are named on ingest's line."""
    report, states = judge({"ingest": beat(gone=7)})
    line = next(c for c in report.components if c.name == "ingest")
    assert "7 stream messages were gone before it read them" in line.detail


def test_failed_graph_queries_show_on_the_api_line():
    """Queries answered 500 are counted on the api's line; none failed, no note."""
    report, _ = judge({"api": beat(queries=40, queries_failed=3)}, expected=("api",))
    line = next(c for c in report.components if c.name == "api")
    assert "3 of 40 graph queries failed" in line.detail and report.ok
    report, _ = judge({"api": beat(queries=40, queries_failed=0)}, expected=("api",))
    assert "failed" not in next(c for c in report.components if c.name == "api").detail


def test_nats_down_makes_the_fleet_unhealthy():
    """An unreachable NATS is a culprit of its own."""
    report, states = judge({"ingest": beat()}, nats_ok=False)
    assert states["nats"] == "down" and not report.ok


def test_projection_states_from_the_worker_heartbeat():
    """Lag with a still checkpoint is stuck; a rebuild is not a failure; no checkpoint is never started."""
    projections = [
        {"name": "graph", "version": 2, "state": "ok", "checkpoint": 5, "lag": 40, "progress_at": NOW - 100,
         "fsync": "every 1 s (deferred)"},
        {"name": "graph", "version": 3, "state": "rebuilding", "checkpoint": 1, "lag": 44, "progress_at": NOW - 100},
        {"name": "other", "version": 1, "checkpoint": None, "head": 50},
        {"name": "fresh", "version": None, "checkpoint": None, "head": 0},
    ]
    report, states = judge({"worker": beat(projections=projections)}, expected=("worker",))
    assert states["projection graph v2"] == "stuck"
    v2 = next(c for c in report.components if c.name == "projection graph v2")
    assert "fsync every 1 s (deferred)" in v2.detail  # how its commits reach the disk
    assert states["projection graph v3"] == "rebuilding"
    assert states["projection other v1"] == "never started"
    assert states["projection fresh"] == "ok"  # an empty log: nothing to project yet


def test_a_second_release_beside_the_first_shows_under_its_own_name():
    """During a deploy `worker-next` reports beside `worker` (not expected, still listed); its
    change feed on standby is a note, not a problem."""
    report, states = judge({"ingest": beat(), "worker": beat(),
                            "worker-next": beat("rebuilding", changes={"standby": "pid 7 publishes"})},
                           expected=("ingest", "worker"))
    line = next(c for c in report.components if c.name == "worker-next")
    assert states["worker-next"] == "rebuilding" and report.ok
    assert "change feed on standby" in line.detail


def _projection_line(report, name="projection graph v3"):
    return next(c for c in report.components if c.name == name)


def test_a_projection_far_behind_and_moving_is_catching_up_healthy_but_not_ready():
    """Over the ready bound and moving: `catching up: lag N, R events/s, ETA T` on the line and in
    the not-ready reason; fleet health stays healthy, readiness does not."""
    projections = [{"name": "graph", "version": 3, "state": "ok", "checkpoint": 130_000, "head": 1_000_000,
                    "lag": 870_000, "progress_at": NOW - 1, "events_per_sec": 50_000.0}]
    report, states = judge({"worker": beat(projections=projections)}, expected=("worker",),
                           ready_max_lag=10_000)
    line = _projection_line(report)
    assert states["projection graph v3"] == "catching up"
    assert "catching up: lag 870,000, 50,000 events/s, ETA 17s" in line.detail
    assert report.ok and not report.ready
    assert report.not_ready == ["projection graph v3: catching up: lag 870,000, 50,000 events/s, ETA 17s"
                                " (ready within 10,000)"]
    as_json = report.to_dict()
    assert as_json["ok"] is True and as_json["ready"] is False and as_json["not_ready"] == report.not_ready
    assert next(c for c in as_json["components"] if c["name"] == "projection graph v3")["ready"] is False


def test_within_the_ready_bound_a_projection_is_ok_and_ready():
    """A lag under the bound is the normal life of a live projection: ok, ready, plain `lag N`."""
    projections = [{"name": "graph", "version": 3, "checkpoint": 990, "head": 1000, "lag": 10,
                    "progress_at": NOW - 1, "events_per_sec": 500.0}]
    report, states = judge({"worker": beat(projections=projections)}, expected=("worker",),
                           ready_max_lag=100)
    assert states["projection graph v3"] == "ok" and report.ok and report.ready
    assert _projection_line(report).detail == "position 990, lag 10"


def test_catching_up_at_rate_zero_has_no_eta():
    """A projection that has not moved in the window yet: rate 0, `ETA unknown`, not a made-up one."""
    projections = [{"name": "graph", "version": 3, "checkpoint": 0, "head": 50_000, "lag": 50_000,
                    "progress_at": NOW - 1, "events_per_sec": 0.0}]
    report, states = judge({"worker": beat(projections=projections)}, expected=("worker",),
                           ready_max_lag=1000)
    assert states["projection graph v3"] == "catching up"
    assert "catching up: lag 50,000, 0 events/s, ETA unknown" in _projection_line(report).detail


def test_a_stuck_projection_over_the_bound_is_neither_healthy_nor_ready():
    """Not moving for stuck_after_secs: stuck (unhealthy), and over the bound it holds reads back."""
    projections = [{"name": "graph", "version": 3, "checkpoint": 0, "head": 50_000, "lag": 50_000,
                    "progress_at": NOW - 100, "events_per_sec": 0.0}]
    report, states = judge({"worker": beat(projections=projections)}, expected=("worker",),
                           ready_max_lag=1000, stuck_after_secs=30)
    assert states["projection graph v3"] == "stuck" and not report.ok and not report.ready
    assert report.not_ready == ["projection graph v3: lag 50000 over 1000"]


def test_a_first_build_shows_the_real_lag_and_is_not_ready():
    """No version active yet, the first one building from position 0 over a non-empty log: the line
    says the real lag (not `position 0, lag 0`), healthy, and reads are not ready."""
    projections = [{"name": "graph", "version": 3, "state": "rebuilding", "first_build": True,
                    "checkpoint": 0, "head": 120_000, "lag": 120_000, "progress_at": NOW,
                    "events_per_sec": 0.0}]
    report, states = judge({"worker": beat("rebuilding", projections=projections)}, expected=("worker",))
    line = _projection_line(report)
    assert states["projection graph v3"] == "catching up"
    assert line.detail == "first build: catching up: lag 120,000, 0 events/s, ETA unknown"
    assert report.ok and not report.ready
    projections[0].update(checkpoint=60_000, lag=60_000, events_per_sec=20_000.0)
    report, _ = judge({"worker": beat("rebuilding", projections=projections)}, expected=("worker",))
    assert _projection_line(report).detail == "first build: catching up: lag 60,000, 20,000 events/s, ETA 3s"


def test_a_rebuild_beside_the_active_version_is_healthy_and_ready():
    """A new version building while the old one serves holds no reads back; its progress is shown."""
    projections = [
        {"name": "graph", "version": 2, "state": "ok", "checkpoint": 1000, "head": 1000, "lag": 0,
         "progress_at": NOW - 1},
        {"name": "graph", "version": 3, "state": "rebuilding", "first_build": False, "checkpoint": 400,
         "head": 1000, "lag": 600, "progress_at": NOW, "events_per_sec": 200.0}]
    report, states = judge({"worker": beat("rebuilding", projections=projections)}, expected=("worker",),
                           ready_max_lag=10)
    assert states["projection graph v3"] == "rebuilding" and report.ok and report.ready
    assert _projection_line(report).detail == "position 400, lag 600, 200 events/s, ETA 3s"


def test_a_log_with_events_and_no_version_shows_its_lag_and_is_not_ready():
    """Before the first build starts, the worker's line carries the whole log as lag."""
    projections = [{"name": "graph", "version": None, "checkpoint": None, "head": 300, "lag": 300}]
    report, states = judge({"worker": beat(projections=projections)}, expected=("worker",))
    assert states["projection graph"] == "never started" and not report.ready
    assert report.not_ready == ["projection graph: no version built yet, lag 300"]


def test_nats_down_and_a_failed_worker_are_not_ready():
    """The readiness reasons of the fleet-wide rules, from the same report as the health states."""
    report, _ = judge({"worker": beat("failed", failure="the projector thread died: OSError")},
                      expected=("worker",), nats_ok=False)
    assert report.not_ready == ["nats: ", "worker: the projector thread died: OSError"]
