"""Health of the parts beyond one machine: a lost cluster member, a replica's lag, log shipping."""

from __future__ import annotations

from ops.health import assess
from workers.natsio.cluster import Member
from workers.natsio.heartbeat import Beat

NOW = 1_000_000.0


def beat(**details) -> Beat:
    return Beat(process="p", state="ok", at=NOW - 1, started_at=NOW - 100, pid=1, host="h",
                interval_secs=2, details=details)


def judge(beats, **kw):
    report = assess(now=NOW, nats_ok=True, nats_detail="", expected=(), beats=beats,
                    consumer_pending=0, log_head=10, quarantine_open=0, ready_max_lag=1000, **kw)
    return report, {c.name: c for c in report.components}


def test_a_lost_cluster_member_is_named_and_makes_the_fleet_unhealthy():
    """One member down: the fleet works on a quorum, yet `fleet health` names the member and fails."""
    report, lines = judge({}, cluster=[Member("n1", True, "leader of stream SDLC"),
                                       Member("n2", False, "replica of stream SDLC: not heard from")])
    assert lines["nats server n2"].state == "down" and lines["nats server n1"].state == "ok"
    assert [c.name for c in report.culprits] == ["nats server n2"]
    assert report.ready  # reads are not held back by a member the quorum covers


def test_a_replica_line_shows_its_lag_to_the_primary():
    """The replica's heartbeat gives its own line; past FLEET_READY_MAX_LAG it is not ready."""
    near = {"position": 990, "primary": 1000, "lag": 10, "progress_at": NOW - 1}
    far = {"position": 10, "primary": 5000, "lag": 4990, "progress_at": NOW - 1}
    report, lines = judge({"replica-b": beat(replica=near), "replica-c": beat(replica=far)})
    assert lines["replica replica-b log"].state == "ok"
    assert "lag 10 to the primary" in lines["replica replica-b log"].detail
    assert lines["replica replica-c log"].state == "catching up"
    assert report.not_ready == ["replica replica-c log: lag 4990 to the primary over 1000"]


def test_a_replica_that_stopped_moving_is_stuck():
    """Lag with no progress for FLEET_STUCK_AFTER_SECS: stuck, and not ready."""
    stale = {"position": 10, "primary": 50, "lag": 40, "progress_at": NOW - 600}
    report, lines = judge({"replica-b": beat(replica=stale)}, stuck_after_secs=30)
    assert lines["replica replica-b log"].state == "stuck" and not report.ready


def test_log_shipping_shows_on_the_writers_heartbeat():
    """The ingest heartbeat's shipping details give a `log shipping` line; stalled shipping is stuck."""
    _, lines = judge({"ingest": beat(shipping={"shipped": 90, "head": 100, "lag": 10,
                                               "progress_at": NOW - 1})})
    assert lines["log shipping"].state == "ok"
    assert "shipped 90 of the log's 100" in lines["log shipping"].detail
    _, lines = judge({"ingest": beat(shipping={"shipped": 90, "head": 100, "lag": 10,
                                               "progress_at": NOW - 600})}, stuck_after_secs=30)
    assert lines["log shipping"].state == "stuck"
