"""Fleet health of a real worker under a real nats-server: stuck behind a lock, then rebuilding."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner

from ops.cli import cli
from ops.embedded import free_port
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
    first_build: list[str] = []
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
                # the first build says how far it has to go, not "position 0, lag 0"
                for c in report.components:
                    if c.kind == "projection" and c.data.get("first_build"):
                        assert c.state == "catching up" and not report.ready, c
                        assert c.detail.startswith("first build: catching up: lag "), c
                        assert c.data["lag"] > 0 or c.data["checkpoint"] == c.data["head"] > 0, c
                        first_build.append(c.detail)
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
    assert first_build, "no heartbeat showed the first build's progress"


def _readyz(url: str) -> tuple[int, dict]:
    """``/readyz``'s status and JSON body (0 and {} while the api does not answer)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())
    except OSError:
        return 0, {}


def _health(env: dict[str, str], *args: str) -> tuple[int, dict]:
    """`fleet health --json` run in-process (fast enough to poll a catch-up): exit code, report."""
    result = CliRunner().invoke(cli, ["health", "--json", *args], env=env)
    if result.exit_code not in (0, 1) or not result.stdout.strip():
        raise AssertionError(f"fleet health exited {result.exit_code}: {result.output}") from result.exception
    return result.exit_code, json.loads(result.stdout)


def _health_now(env: dict[str, str]) -> dict:
    """The report, for the message of a wait that timed out (from inside the wait's event loop)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_health, env).result()[1]


def _graph_line(report: dict) -> dict | None:
    return next((c for c in report["components"] if c["kind"] == "projection"), None)


@pytest.mark.slow
def test_fleet_health_and_readyz_agree_while_a_projection_catches_up_and_after(settings):
    """A backlog ingested with the worker stopped, then the worker started: while it catches up
    `fleet health` says healthy (exit 0) but not ready and /readyz answers 503, both with
    `catching up: lag N, R events/s, ETA T`; once at the head both say ready."""
    port = free_port()
    env = settings_env(settings, FLEET_API_PORT=str(port), FLEET_HEARTBEAT_INTERVAL_SECS="1",
                       FLEET_EXPECTED_PROCESSES="ingest,worker,api", FLEET_READY_MAX_LAG="500",
                       # batches of 100 (no segment folding), so the catch-up lasts a few heartbeats
                       FLEET_CATCHUP_LAG="0", FLEET_PROJECTOR_BATCH_MAX="100")
    readyz = f"http://127.0.0.1:{port}/readyz"
    settings.data_dir.mkdir(parents=True, exist_ok=True)

    def start(name: str) -> subprocess.Popen:
        with open(settings.data_dir / f"{name}.log", "ab") as err:
            return subprocess.Popen(fleet_cmd(name), env=env, stdout=subprocess.DEVNULL, stderr=err)

    def stop(proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()

    def simulate(events: int, seed: int) -> None:
        subprocess.run(fleet_cmd("simulate", "--events", str(events), "--seed", str(seed)), env=env,
                       check=True, capture_output=True, timeout=120)

    def at_head(head: int):
        code, report = _health(env)
        line = _graph_line(report)
        return report if (code == 0 and report["ready"] and line and line["state"] == "ok"
                          and line["data"].get("checkpoint") == head) else None

    procs = {name: start(name) for name in ("ingest", "api")}
    try:
        simulate(200, seed=5)
        procs["worker"] = start("worker")
        asyncio.run(wait_until(lambda: asyncio.to_thread(at_head, 200), timeout_secs=60,
                               interval_secs=0.3, message=lambda: _health_now(env)))
        stop(procs.pop("worker"))

        simulate(20_000, seed=6)  # ingest logs it all; nothing projects it
        def logged() -> bool:
            return next(c for c in _health(env)[1]["components"] if c["kind"] == "log")["data"]["head"] \
                == 20_200

        asyncio.run(wait_until(lambda: asyncio.to_thread(logged), timeout_secs=120, interval_secs=0.5,
                               message=lambda: _health_now(env)))
        procs["worker"] = start("worker")

        seen_catching_up: list[tuple[dict, dict]] = []
        checks = 0

        def caught_up_and_agreeing():
            nonlocal checks
            code1, before = _health(env)
            status, body = _readyz(readyz)
            code2, after = _health(env, "--ready")
            assert code1 == (0 if before["ok"] else 1)
            assert code2 == (0 if after["ok"] and after["ready"] else 1)  # --ready: exit 1 if not ready
            if before["ready"] == after["ready"] and status:  # no change of state between the reads
                checks += 1
                assert (status == 200) == before["ready"] == body["ready"], (before, status, body)
                line = _graph_line(before)
                if line and line["state"] == "catching up" and _graph_line(after)["state"] == "catching up":
                    assert before["ok"] and code1 == 0 and code2 == 1  # healthy, not ready
                    assert "catching up: lag " in line["detail"] and " events/s, ETA " in line["detail"]
                    assert any("catching up: lag " in p for p in body["problems"]), body
                    assert any("catching up: lag " in p for p in before["not_ready"]), before
                    if not seen_catching_up:  # the operator's view of the same state, once
                        text = CliRunner().invoke(cli, ["health"], env=env).stdout
                        if "catching up: lag" in text:  # (unless it caught up in between)
                            assert "fleet healthy, NOT READY" in text, text
                            assert "not ready: projection graph v" in text, text
                    seen_catching_up.append((line, body))
            return at_head(20_200)

        final = asyncio.run(wait_until(lambda: asyncio.to_thread(caught_up_and_agreeing),
                                       timeout_secs=120, interval_secs=0.1,
                                       message=lambda: _health_now(env)))
        assert seen_catching_up, "never saw the projection catching up"
        line, _ = seen_catching_up[-1]
        assert line["data"]["lag"] > 500 and line["data"]["catching_up"].startswith("catching up: lag ")
        assert final["ok"] and final["ready"] and not final["not_ready"]
        status, body = _readyz(readyz)
        assert status == 200 and body == {"ready": True, "healthy": True, "problems": [], "notes": []}
        assert checks >= 2
    finally:
        for proc in procs.values():
            stop(proc)
