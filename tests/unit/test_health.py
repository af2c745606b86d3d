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
