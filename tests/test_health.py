"""Fleet health: the pure rules, and real processes killed under a real nats-server."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from ops.health import assess
from projections.model.ontology import VERSION as V
from tests.conftest import fleet_cmd, settings_env
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


@pytest.mark.slow
def test_a_killed_ingest_process_is_named_within_seconds(settings):
    """Real processes: healthy while ingest runs, then kill -9 and health names it down."""
    env = settings_env(settings, FLEET_HEARTBEAT_INTERVAL_SECS="1", FLEET_HEARTBEAT_STALE_SECS="3",
                       FLEET_EXPECTED_PROCESSES="ingest")
    proc = subprocess.Popen(fleet_cmd("ingest"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            result = subprocess.run(fleet_cmd("health", "--json"), env=env, capture_output=True, timeout=30)
            report = json.loads(result.stdout)
            if result.returncode == 0:
                break
            assert time.monotonic() < deadline, report
            time.sleep(0.3)
        states = {c["name"]: c["state"] for c in report["components"]}
        assert states["ingest"] == "ok" and states["nats"] == "ok"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed_at = time.monotonic()
    while True:
        result = subprocess.run(fleet_cmd("health"), env=env, capture_output=True, timeout=30)
        if result.returncode == 1 and b"ingest (down)" in result.stderr:
            break
        assert time.monotonic() - killed_at < 15, result.stdout
        time.sleep(0.3)


def _health_states(env, want: dict[str, str], timeout: float = 45) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(fleet_cmd("health", "--json"), env=env, capture_output=True, timeout=30)
        states = {c["name"]: c["state"] for c in json.loads(result.stdout)["components"]}
        if all(states.get(k) == v for k, v in want.items()):
            return states
        assert time.monotonic() < deadline, states
        time.sleep(0.5)


@pytest.mark.slow
def test_a_projection_that_cannot_move_is_stuck_and_an_absent_process_never_started(settings):
    """Real worker, version locked by another writer: lag grows, checkpoint stands still -> stuck."""
    from projections.versions.rebuild import rebuild
    from projections.versions.catalog import Versions
    from projections.store.lock import WriterLock
    from tests.test_projection_support import simulated_log

    simulated_log(settings.log_path, 300, seed=2)
    rebuild(settings.log_path, settings.projections_dir, workers=0)
    lock = WriterLock(Versions(settings.projections_dir).path(V)).acquire()  # "another writer"
    simulated_log(settings.log_path, 400, seed=2, start=300)
    env = settings_env(settings, FLEET_HEARTBEAT_INTERVAL_SECS="1", FLEET_STUCK_AFTER_SECS="2",
                       FLEET_EXPECTED_PROCESSES="worker,api")
    worker_log = settings.data_dir / "worker.log"
    with open(worker_log, "wb") as err:
        worker = subprocess.Popen(fleet_cmd("worker"), env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        states = _health_states(env, {f"projection graph v{V}": "stuck"})
        assert states["worker"] == "stuck" and states["api"] == "never started"
        lock.release()  # the other writer goes away: the worker catches up
        _health_states(env, {f"projection graph v{V}": "ok", "worker": "ok"})
    finally:
        lock.release()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            pytest.fail("the worker did not stop within 30 s of SIGTERM; its log ends:\n"
                        + worker_log.read_text()[-3000:])


@pytest.mark.slow
def test_a_worker_rebuilding_reports_rebuilding_and_counts_as_healthy(settings):
    """A real worker building the first version says rebuilding; then ok at the head."""
    import asyncio

    from ops.health import gather
    from tests.test_projection_support import simulated_log

    simulated_log(settings.log_path, 30_000, seed=4)
    env = settings_env(settings, FLEET_HEARTBEAT_INTERVAL_SECS="1", FLEET_EXPECTED_PROCESSES="worker")
    worker = subprocess.Popen(fleet_cmd("worker"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: list[str] = []
    try:
        async def watch():
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                report = await gather(settings, expected=("worker",))
                state = {c.name: c.state for c in report.components}.get("worker")
                if state and (not seen or seen[-1] != state):
                    seen.append(state)
                if state == "rebuilding":
                    # a rebuild in progress is not a failure (other tests' processes may
                    # still have heartbeats in this module's bucket: judge this worker's)
                    mine = [c for c in report.culprits if c.name == "worker" or c.kind == "projection"]
                    assert not mine, mine
                if "rebuilding" in seen and state == "ok":
                    # the worker writes its projection with deferred fsync, and says so
                    projection = next(c for c in report.components if c.kind == "projection")
                    assert "fsync every 1 s (deferred)" in projection.detail, projection
                    return
                await asyncio.sleep(0.1)

        asyncio.run(watch())
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    assert "rebuilding" in seen and seen[-1] == "ok", seen
