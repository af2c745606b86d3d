"""Fleet health of a real worker under a real nats-server: stuck behind a lock, then rebuilding."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess

import pytest

from projections.model.ontology import VERSION as V
from tests.support.cli import fleet_cmd, settings_env
from tests.support.wait import wait_until


def _health_states(env) -> dict[str, str]:
    """Each component's state, as `fleet health --json` reports it now."""
    result = subprocess.run(fleet_cmd("health", "--json"), env=env, capture_output=True, timeout=30)
    return {c["name"]: c["state"] for c in json.loads(result.stdout)["components"]}


def _health_states_are(env, want: dict[str, str]) -> dict[str, str] | None:
    """Each component's state if those named in ``want`` are in the wanted state, else None."""
    states = _health_states(env)
    return states if all(states.get(k) == v for k, v in want.items()) else None


@pytest.mark.slow
def test_a_projection_that_cannot_move_is_stuck_and_an_absent_process_never_started(settings):
    """Real worker, version locked by another writer: lag grows, checkpoint stands still -> stuck."""
    from projections.store.lock import WriterLock
    from projections.versions.catalog import Versions
    from projections.versions.rebuild import rebuild
    from tests.support.projection import simulated_log

    simulated_log(settings.log_path, 300, seed=2)
    rebuild(settings.log_path, settings.projections_dir)
    lock = WriterLock(Versions(settings.projections_dir).path(V)).acquire()  # "another writer"
    simulated_log(settings.log_path, 400, seed=2, start=300)
    env = settings_env(settings, FLEET_HEARTBEAT_INTERVAL_SECS="1", FLEET_STUCK_AFTER_SECS="2",
                       FLEET_EXPECTED_PROCESSES="worker,api")
    worker_log = settings.data_dir / "worker.log"
    with open(worker_log, "wb") as err:
        worker = subprocess.Popen(fleet_cmd("worker"), env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        stuck = {f"projection graph v{V}": "stuck"}
        states = asyncio.run(wait_until(lambda: _health_states_are(env, stuck), timeout_secs=45,
                                        interval_secs=0.5, message=lambda: _health_states(env)))
        assert states["worker"] == "stuck" and states["api"] == "never started"
        lock.release()  # the other writer goes away: the worker catches up
        caught_up = {f"projection graph v{V}": "ok", "worker": "ok"}
        asyncio.run(wait_until(lambda: _health_states_are(env, caught_up), timeout_secs=45,
                               interval_secs=0.5, message=lambda: _health_states(env)))
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
    from ops.health import gather
    from tests.support.projection import simulated_log

    # Long enough (about 3 s here) that a 1 s heartbeat lands during the rebuild.
    simulated_log(settings.log_path, 100_000, seed=4)
    env = settings_env(settings, FLEET_HEARTBEAT_INTERVAL_SECS="1", FLEET_EXPECTED_PROCESSES="worker")
    worker = subprocess.Popen(fleet_cmd("worker"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seen: list[str] = []
    try:
        async def rebuilt_and_ok() -> bool:
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
                return True
            return False

        asyncio.run(wait_until(rebuilt_and_ok, timeout_secs=90, interval_secs=0.1,
                               message=lambda: f"the worker's states were {seen}"))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    assert "rebuilding" in seen and seen[-1] == "ok", seen
