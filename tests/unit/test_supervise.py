"""The supervisor restarts what exits with a back-off, keeps the others running, stops everything
cleanly (SIGKILL only past the grace period, named) and answers `fleet restart`; on small real processes."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading

import pytest

from events.errors import ConfigError
from ops.supervise import Supervisor, SupervisorError, backoff_secs, read_state, request_restart
from tests.support.cli import fleet
from tests.support.wait import wait_until

PY = sys.executable
SCRIPTS = {
    "steady": "import time\nprint('up', flush=True)\ntime.sleep(600)\n",
    "crashy": "import sys, time\nprint('crashing', flush=True)\ntime.sleep(0.3)\nsys.exit(3)\n",
    "stubborn": ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                 "print('ready', flush=True)\ntime.sleep(600)\n"),
    "orphaning": ("import subprocess, sys, time\np = subprocess.Popen(['sleep', '600'])\n"
                  "print('child', p.pid, flush=True)\ntime.sleep(0.3)\nsys.exit(3)\n"),
}


def _script(name: str) -> str:
    """The command line of one of SCRIPTS (a file: no shell between the supervisor and python)."""
    import tempfile

    path = os.path.join(tempfile.gettempdir(), f"fleet-supervise-test-{name}.py")
    with open(path, "w") as f:
        f.write(SCRIPTS[name])
    return f"{PY} {path}"


STEADY, CRASHY, STUBBORN, ORPHANING = (_script(n) for n in ("steady", "crashy", "stubborn", "orphaning"))

def wait(predicate, what: str, timeout_secs: float = 20):
    return asyncio.run(wait_until(predicate, timeout_secs=timeout_secs, interval_secs=0.05, message=what))


class Running:
    """A supervisor on its own thread, its output in a buffer."""

    def __init__(self, processes, data_dir, **kw):
        self.out = io.StringIO()
        self.supervisor = Supervisor(processes, env=dict(os.environ), data_dir=data_dir, output=self.out,
                                     **{"backoff_base_secs": 0.1, **kw})
        self.data_dir = data_dir
        self.code = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.code = self.supervisor.run()

    def processes(self):
        state = read_state(self.data_dir)
        return state["processes"] if state else {}

    def running(self, name):
        info = self.processes().get(name, {})
        return info.get("pid") if info.get("state") == "running" else None

    def stop(self):
        self.supervisor.stop()
        self.thread.join(60)
        assert not self.thread.is_alive()
        return self.code


def test_backoff_doubles_up_to_the_cap():
    """1 s after the first exit, then 2, 4, 8 ... never more than the cap."""
    assert [backoff_secs(n, base_secs=1, cap_secs=30) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_an_exiting_process_is_restarted_while_the_others_keep_running(tmp_path):
    """A process that exits comes back, counted in the state file; its neighbour keeps its pid."""
    fleet_ = Running({"steady": STEADY, "crashy": CRASHY}, tmp_path)
    try:
        steady = wait(lambda: fleet_.running("steady"), "steady never ran")
        wait(lambda: fleet_.processes()["crashy"]["restarts"] >= 2, "crashy was not restarted twice")
        info = fleet_.processes()["crashy"]
        assert info["last_exit"] == 3 and info["starts"] == info["restarts"] + 1
        assert fleet_.running("steady") == steady
        state = read_state(tmp_path)
        assert state["supervisor"]["running"] and state["supervisor"]["pid"] == os.getpid()
    finally:
        assert fleet_.stop() == 0
    assert not read_state(tmp_path)["supervisor"]["running"]
    text = fleet_.out.getvalue()
    assert re.search(r"^\d\d:\d\d:\d\d crashy +\| crashing$", text, re.MULTILINE), text
    assert "crashy exited (exit 3) after" in text and "starting it again in 0.1s" in text
    assert "every process stopped within its grace period" in text


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_period_and_named(tmp_path):
    """SIGTERM to all, NATS last; SIGKILL only for the one still there after the grace period."""
    fleet_ = Running({"nats": STEADY, "stubborn": STUBBORN, "steady": STEADY}, tmp_path, grace_secs=1)
    wait(lambda: "stubborn | ready" in fleet_.out.getvalue(), "stubborn never got ready")
    pids = {n: fleet_.running(n) for n in ("nats", "stubborn", "steady")}
    assert fleet_.stop() == 1
    text = fleet_.out.getvalue()
    assert "stubborn did not stop within 1s of SIGTERM: sending SIGKILL" in text
    assert "steady stopped (killed by SIGTERM)" in text and "stubborn stopped (killed by SIGKILL)" in text
    assert text.index("stubborn stopped") < text.index("nats stopped")  # nats outlives the others
    assert "every process stopped; stubborn needed SIGKILL" in text
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert read_state(tmp_path)["processes"]["stubborn"]["kills"] == 1


def test_fleet_restart_restarts_one_process_and_no_other(tmp_path):
    """A restart request gives the process a new pid at once; its neighbour keeps its own."""
    fleet_ = Running({"a": STEADY, "b": STEADY}, tmp_path)
    try:
        a, b = wait(lambda: fleet_.running("a") and fleet_.running("b") and
                    (fleet_.running("a"), fleet_.running("b")), "a and b never ran")
        old, new = request_restart(tmp_path, "a", timeout_secs=20)
        assert old == a and new not in (None, a)
        assert fleet_.running("b") == b
        assert fleet_.processes()["a"]["restarts"] == 1
        with pytest.raises(ConfigError, match="runs no process 'c' - it runs a, b"):
            request_restart(tmp_path, "c")
    finally:
        fleet_.stop()
    assert "a stopped (killed by SIGTERM) for a restart" in fleet_.out.getvalue()


def test_one_supervisor_per_data_dir(tmp_path):
    """A second supervisor on the same data dir is refused, naming the first."""
    fleet_ = Running({"a": STEADY}, tmp_path)
    try:
        wait(lambda: fleet_.running("a"), "a never ran")
        with pytest.raises(ConfigError, match=rf"a supervisor \(pid {os.getpid()}\) already runs"):
            Supervisor({"a": STEADY}, env=dict(os.environ), data_dir=tmp_path, output=io.StringIO()).run()
    finally:
        fleet_.stop()


def test_restart_without_a_running_supervisor_is_a_clear_error(tmp_path):
    """No `fleet up` (never ran, or gone without a word) means SupervisorError, not a hang."""
    with pytest.raises(SupervisorError, match="no `fleet up` runs on"):
        request_restart(tmp_path, "worker")
    (tmp_path / "supervisor").mkdir()
    dead = {"supervisor": {"pid": 2**22 + 7, "running": True}, "processes": {"worker": {"starts": 1}}}
    (tmp_path / "supervisor" / "state.json").write_text(json.dumps(dead))
    assert read_state(tmp_path)["supervisor"]["running"] is False
    with pytest.raises(SupervisorError, match="no `fleet up` runs on"):
        request_restart(tmp_path, "worker")


def test_fleet_restart_exits_3_without_fleet_up(monkeypatch, capsys, tmp_path):
    """`fleet restart worker` with nothing running says so and exits 3."""
    monkeypatch.setenv("FLEET_DATA_DIR", str(tmp_path))
    code, _, err = fleet(monkeypatch, capsys, "restart", "worker")
    assert code == 3 and "no `fleet up` runs on" in err


def test_fleet_up_only_names_the_processes_it_knows(monkeypatch, capsys, tmp_path):
    """--only with a name not in the Procfile is refused, listing the Procfile's names."""
    monkeypatch.setenv("FLEET_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    code, _, err = fleet(monkeypatch, capsys, "up", "--only", "ingest,wroker")
    assert code == 2
    assert "'wroker' is not a process of the built-in process list, which has nats, ingest, worker, api" in err


def test_health_lines_show_what_fleet_up_did():
    """Restarts, the last exit, a back-off and SIGKILLs appear on the process's `fleet health` line."""
    from ops.health import assess

    now = 1_000_000.0
    supervised = {
        "ingest": {"state": "running", "pid": 12, "starts": 3, "restarts": 2, "kills": 0,
                   "last_exit": -9, "last_exit_at": now - 12},
        "api": {"state": "backoff", "pid": None, "starts": 4, "restarts": 3, "kills": 1,
                "last_exit": 1, "last_exit_at": now - 1, "next_start_at": now + 4},
        "nats": {"state": "running", "pid": 10, "starts": 1, "restarts": 0, "kills": 0},
    }
    report = assess(now=now, nats_ok=True, nats_detail="nats://127.0.0.1:4222", expected=("ingest", "api"),
                    beats={}, consumer_pending=None, log_head=None, quarantine_open=0, supervised=supervised)
    lines = {c.name: c for c in report.components}
    assert lines["ingest"].detail == "no heartbeat seen, restarted 2x by fleet up, last exit -9 12.0s ago"
    assert lines["api"].detail == ("no heartbeat seen, restarted 3x by fleet up, last exit 1 1.0s ago,"
                                   " fleet up starts it again in 4s, needed SIGKILL 1x")
    assert lines["nats"].detail == "nats://127.0.0.1:4222"
    assert lines["api"].data["supervisor"]["restarts"] == 3


def test_output_is_coloured_on_a_terminal_only(tmp_path):
    """Prefixes carry ANSI colours when the output is a terminal, none otherwise."""

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    for output, coloured in ((Terminal(), True), (io.StringIO(), False)):
        supervisor = Supervisor({"a": STEADY}, env=dict(os.environ), data_dir=tmp_path, output=output)
        supervisor._print("a", "36", "hello")
        assert ("\x1b[36m" in output.getvalue()) is coloured
        plain = re.sub(r"\x1b\[[0-9;]*m", "", output.getvalue())
        assert re.fullmatch(r"\d\d:\d\d:\d\d a +\| hello\n", plain), plain


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" in f.read()  # a zombie waiting for init is gone too
    except FileNotFoundError:
        return True


def test_what_an_exited_process_started_is_stopped_before_it_restarts(tmp_path):
    """A child left behind by a process that exited gets SIGTERM with its process group."""
    fleet_ = Running({"orphaning": ORPHANING}, tmp_path, backoff_base_secs=5)
    try:
        text = wait(lambda: re.search(r"\| child (\d+)", fleet_.out.getvalue()), "no child started")
        wait(lambda: _gone(int(text.group(1))), "the orphaned child still runs")
    finally:
        fleet_.stop()


def test_a_reused_pid_is_not_taken_for_the_supervisor(tmp_path):
    """State left by a supervisor that died, whose pid now belongs to another process, is not running."""
    (tmp_path / "supervisor").mkdir()
    state = {"supervisor": {"pid": os.getpid(), "pid_started": "1", "running": True}, "processes": {}}
    (tmp_path / "supervisor" / "state.json").write_text(json.dumps(state))
    assert read_state(tmp_path)["supervisor"]["running"] is False
    from ops.supervise.state import process_start

    state["supervisor"]["pid_started"] = process_start(os.getpid())
    (tmp_path / "supervisor" / "state.json").write_text(json.dumps(state))
    assert read_state(tmp_path)["supervisor"]["running"] is True


def test_what_a_dead_supervisor_left_running_is_stopped_first(tmp_path):
    """Processes of a `fleet up` that died (their pids and start times in its state) are stopped at the next start."""
    from ops.supervise.state import process_start, state_dir, write_json

    left = subprocess.Popen(shlex.split(STEADY), start_new_session=True, stdout=subprocess.DEVNULL)
    started = wait(lambda: process_start(left.pid), "the leftover never started")
    state_dir(tmp_path).mkdir()
    write_json(state_dir(tmp_path) / "state.json", {
        "supervisor": {"pid": 2**22 + 7, "running": True},
        "processes": {"a": {"pid": left.pid, "pid_started": started, "state": "running"},
                      "b": {"pid": os.getpid(), "pid_started": "1", "state": "running"}}})  # a reused pid
    fleet_ = Running({"a": STEADY, "b": STEADY}, tmp_path)
    try:
        assert left.wait(timeout=20) == -signal.SIGTERM
        wait(lambda: fleet_.running("a") not in (None, left.pid), "a was not started")
    finally:
        fleet_.stop()
        left.kill()
    text = fleet_.out.getvalue()
    assert f"died and left a (pid {left.pid}) running: stopping them" in text
    assert str(os.getpid()) not in text.split("stopping them")[0]


def test_procfile_lines_are_shell_commands_and_a_missing_program_is_retried(tmp_path, monkeypatch):
    """Variables and `&&` work as in a Procfile; a program that does not exist is said so and retried."""
    monkeypatch.setenv("GREETING", "hello")
    fleet_ = Running({"shell": f"echo $GREETING && {STEADY}", "missing": "/nonexistent/fleet api"}, tmp_path)
    try:
        wait(lambda: re.search(r"shell +\| hello\n.*shell +\| up\n", fleet_.out.getvalue(), re.DOTALL),
             "the shell line did not run")
        wait(lambda: fleet_.out.getvalue().count("cannot start missing (/nonexistent/fleet api): [Errno 2]"
                                                 " No such file or directory") >= 2,
             "the missing program was not retried")
        assert fleet_.processes()["missing"]["state"] == "backoff"
    finally:
        fleet_.stop()
