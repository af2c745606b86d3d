"""`fleet up` supervises the Procfile: a killed process comes back while the others keep running,
`fleet restart` restarts one, a stop leaves nothing behind; `fleet dev` restarts on code changes.

One fleet (nats from the wheel, ingest, worker, api on free ports, a temporary data dir) serves the
supervision tests in file order; the clean stop comes last.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from ops.embedded import free_port
from ops.procfile import FLEET_PROCESSES, read_procfile
from ops.supervise import read_state
from tests.support.cli import fleet_cmd, fleet_health, healthy_report
from tests.support.paths import ROOT
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

GRACE_SECS = 20


def test_the_repository_procfile_matches_the_built_in_list():
    """The Procfile and `fleet up`'s fallback name the same processes and commands."""
    assert read_procfile(ROOT / "Procfile") == FLEET_PROCESSES


def test_a_malformed_procfile_line_is_named(tmp_path):
    """A line without `name: command` is reported with its number."""
    bad = tmp_path / "Procfile"
    bad.write_text("nats: fleet nats\njust words\n")
    with pytest.raises(ValueError, match="Procfile:2"):
        read_procfile(bad)


def _env(tmp_path: Path) -> dict[str, str]:
    return dict(os.environ, FLEET_DATA_DIR=str(tmp_path / "data"),
                FLEET_NATS_URL=f"nats://127.0.0.1:{free_port()}", FLEET_EMBEDDED_NATS="true",
                FLEET_API_PORT=str(free_port()), FLEET_HEARTBEAT_INTERVAL_SECS="1",
                FLEET_EXPECTED_PROCESSES="ingest,worker,api", FLEET_STOP_GRACE_SECS=str(GRACE_SECS))


def _members(pgid: int) -> list[int]:
    """The processes of group ``pgid`` still running (a zombie waiting for init to reap it is not)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z" and fields[2] == str(pgid):
            found.append(int(entry.name))
    return found


def _wait(predicate, message, timeout_secs=90.0, interval_secs=0.2):
    return asyncio.run(wait_until(predicate, timeout_secs=timeout_secs, interval_secs=interval_secs,
                                  message=message))


class Fleet:
    """A `fleet up` child process, its output in a file, its state read from the data dir."""

    def __init__(self, tmp_path: Path, *args: str):
        self.env = _env(tmp_path)
        self.data_dir = Path(self.env["FLEET_DATA_DIR"])
        self.output = tmp_path / "up.log"
        self.cwd, self.args = tmp_path, args
        self.seen_pids: set[int] = set()
        self.start()

    def start(self) -> None:
        with open(self.output, "ab") as out:
            self.proc = subprocess.Popen(fleet_cmd("up", "--procfile", str(ROOT / "Procfile"), *self.args),
                                         env=self.env, cwd=self.cwd, stdout=out, stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def processes(self) -> dict[str, dict]:
        state = read_state(self.data_dir)
        found = state["processes"] if state else {}
        self.seen_pids |= {p["pid"] for p in found.values() if p.get("pid")}
        return found

    def pids(self) -> dict[str, int | None]:
        return {n: p.get("pid") if p.get("state") == "running" else None for n, p in self.processes().items()}

    def healthy(self) -> dict:
        """The first healthy report in which each process's heartbeat comes from its current pid
        (a killed process's last heartbeat stays fresh for a few seconds)."""
        def current() -> dict | None:
            report = healthy_report(self.env)
            if report is None:
                return None
            pids = self.pids()
            beats = {c["name"]: c["data"].get("pid") for c in report["components"] if c["kind"] == "process"}
            return report if all(beats.get(n) == pids[n] for n in pids if n != "nats") else None

        return _wait(current, lambda: fleet_health(self.env).stdout.decode()[-2000:] + self.text()[-3000:])

    def kill_all(self) -> None:
        """Clean-up after a failed test: nothing of this fleet may outlive the module."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in self.seen_pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    running = Fleet(tmp_path_factory.mktemp("up"))
    try:
        running.healthy()
        yield running
    finally:
        running.kill_all()


def test_every_procfile_process_comes_up_healthy_under_supervision(fleet):
    """The four processes run, each in the state file with one start, the output prefixed by name."""
    processes = fleet.processes()
    assert set(processes) == {"nats", "ingest", "worker", "api"}
    assert all(p["state"] == "running" and p["starts"] == 1 and p["restarts"] == 0 for p in processes.values())
    text = fleet.text()
    for name in processes:
        assert f"starting {name}: fleet {name} (pid {processes[name]['pid']})" in text
    assert any(line.split("|")[0].split()[1:] == ["worker"] for line in text.splitlines() if "|" in line)


def test_a_killed_process_comes_back_and_the_others_keep_running(fleet):
    """SIGKILL each process in turn: it is started again, the others keep their pids, health says so."""
    for name in ("api", "worker", "ingest", "nats"):
        before = fleet.pids()
        restarts = fleet.processes()[name]["restarts"]
        os.kill(before[name], signal.SIGKILL)
        _wait(lambda name=name, old=before[name]: fleet.pids()[name] not in (None, old),
              lambda name=name: f"{name} did not come back: {fleet.processes()[name]}\n{fleet.text()[-3000:]}")
        after = fleet.pids()
        assert {n: p for n, p in after.items() if n != name} == {n: p for n, p in before.items() if n != name}
        info = fleet.processes()[name]
        assert info["restarts"] == restarts + 1 and info["last_exit"] == -signal.SIGKILL
        assert f"{name} exited (killed by SIGKILL)" in fleet.text()
        report = fleet.healthy()
        line = next(c for c in report["components"] if c["name"] == name)
        assert f"restarted {restarts + 1}x by fleet up, last exit -9" in line["detail"]
        assert line["data"]["supervisor"]["restarts"] == restarts + 1
    assert fleet.pids() == after  # nobody else was restarted along the way
    assert _restarts_in_metrics(fleet) == {"api": 1, "worker": 1, "ingest": 1, "nats": 1}


def _restarts_in_metrics(fleet: Fleet) -> dict[str, float]:
    """`fleet_process_restarts_total` by process, from the api's live /metrics."""
    from urllib.request import urlopen

    from prometheus_client.parser import text_string_to_metric_families

    with urlopen(f"http://127.0.0.1:{fleet.env['FLEET_API_PORT']}/metrics", timeout=10) as response:
        text = response.read().decode()
    family = next(f for f in text_string_to_metric_families(text) if f.name == "fleet_process_restarts")
    return {s.labels["process"]: s.value for s in family.samples if s.name == "fleet_process_restarts_total"}


def test_fleet_restart_restarts_the_worker_alone(fleet):
    """`fleet restart worker` gives the worker a new pid through the running supervisor."""
    before = fleet.pids()
    result = subprocess.run(fleet_cmd("restart", "worker"), env=fleet.env, capture_output=True, text=True,
                            timeout=GRACE_SECS + 30, check=False)
    assert result.returncode == 0, result.stderr
    after = fleet.pids()
    assert result.stdout.strip() == f"worker restarted (pid {before['worker']} -> {after['worker']})"
    assert after["worker"] != before["worker"]
    assert {n: p for n, p in after.items() if n != "worker"} == {n: p for n, p in before.items() if n != "worker"}
    assert "worker stopped (exit 0) for a restart" in fleet.text()  # SIGTERM was enough
    unknown = subprocess.run(fleet_cmd("restart", "wrker"), env=fleet.env, capture_output=True, text=True,
                             timeout=30, check=False)
    assert unknown.returncode == 2 and "runs no process 'wrker' - it runs nats, ingest, worker, api" in unknown.stderr
    fleet.healthy()


def test_a_second_fleet_up_on_the_same_data_dir_is_refused(fleet):
    """While one `fleet up` runs, another on its data dir exits 2 naming it (and starts nothing)."""
    result = subprocess.run(fleet_cmd("up"), env=fleet.env, capture_output=True, text=True, timeout=30,
                            check=False)
    assert result.returncode == 2
    assert f"`fleet up` (pid {fleet.proc.pid}) already runs the fleet" in result.stderr


def test_a_fleet_up_that_died_leaves_nothing_to_the_next_one(fleet):
    """After `fleet up` is SIGKILLed its processes run on; the next `fleet up` stops them, then starts its own."""
    old = fleet.pids()
    fleet.proc.kill()
    fleet.proc.wait()
    for pid in old.values():
        os.kill(pid, 0)  # still running, each in its own process group
    fleet.start()
    _wait(lambda: all(p not in (None, old[n]) for n, p in fleet.pids().items()),
          lambda: fleet.text()[-3000:])
    fleet.healthy()
    text = fleet.text()
    assert f"died and left nats (pid {old['nats']}), ingest (pid {old['ingest']})" in text
    assert "SIGKILL" not in text.split("died and left")[1]  # they stopped on SIGTERM
    for pid in old.values():
        assert _members(pid) == []


def test_sigterm_stops_every_process_within_the_grace_period(fleet):
    """A stop leaves no process (nor child) behind and needs no SIGKILL; exit code 0."""
    groups = [pid for pid in fleet.pids().values() if pid]
    assert len(groups) == 4
    fleet.proc.send_signal(signal.SIGTERM)
    assert fleet.proc.wait(timeout=2 * GRACE_SECS + 15) == 0, fleet.text()[-3000:]
    text = fleet.text()
    assert "every process stopped within its grace period" in text
    assert "SIGKILL" not in text.split("SIGTERM received")[1]
    for name in ("api", "worker", "ingest", "nats"):
        assert f"{name} stopped (exit 0)" in text or f"{name} stopped (killed by SIGTERM)" in text, name
    assert text.rindex("worker stopped (") > text.index("SIGTERM received")
    assert text.rindex("nats stopped") > max(text.rindex(f"{n} stopped") for n in ("api", "worker", "ingest"))
    for pgid in groups:  # each process group is empty: no child of theirs lives on either
        assert _members(pgid) == []
    state = read_state(fleet.data_dir)
    assert state["supervisor"]["running"] is False
    assert {p["state"] for p in state["processes"].values()} == {"stopped"}


def test_only_runs_the_named_processes(tmp_path):
    """`fleet up --only nats,ingest` runs those two and nothing else."""
    only = Fleet(tmp_path, "--only", "nats,ingest")
    try:
        _wait(lambda: set(only.pids()) == {"nats", "ingest"} and all(only.pids().values()),
              lambda: only.text()[-3000:])
        _wait(lambda: b"ingest" in fleet_health(only.env, "--json").stdout and
              next(c for c in json.loads(fleet_health(only.env, "--json").stdout)["components"]
                   if c["name"] == "ingest")["state"] == "ok", lambda: only.text()[-3000:])
        assert "starting worker" not in only.text() and "starting api" not in only.text()
        only.proc.send_signal(signal.SIGTERM)
        assert only.proc.wait(timeout=2 * GRACE_SECS + 15) == 0
    finally:
        only.kill_all()


def test_fleet_dev_restarts_processes_when_code_changes(tmp_path):
    """Touching a watched .py file restarts the reloadable processes, not NATS."""
    env = _env(tmp_path)
    watched = tmp_path / "code"
    watched.mkdir()
    (watched / "mod.py").write_text("x = 1\n")
    output = tmp_path / "dev.log"
    with open(output, "wb") as out:
        proc = subprocess.Popen(fleet_cmd("dev", "--procfile", str(ROOT / "Procfile"), "--watch", str(watched)),
                                env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    try:
        asyncio.run(wait_until(lambda: healthy_report(env), timeout_secs=90, interval_secs=0.5,
                               message=lambda: fleet_health(env, "--json").stdout.decode()[-2000:]))
        (watched / "mod.py").write_text("x = 2\n")
        asyncio.run(wait_until(lambda: b"restarting ingest" in output.read_bytes(), timeout_secs=30,
                               interval_secs=0.2, message=lambda: output.read_text()[-2000:]))
        asyncio.run(wait_until(lambda: healthy_report(env), timeout_secs=90, interval_secs=0.5,
                               message=lambda: fleet_health(env, "--json").stdout.decode()[-2000:]))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=2 * GRACE_SECS + 15)
    assert output.read_text().count("starting nats") == 1
    assert proc.returncode == 0
