"""`fleet up` runs the Procfile; `fleet dev` restarts processes on code changes."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ops.embedded import free_port
from ops.procfile import FLEET_PROCESSES, read_procfile
from tests.conftest import ROOT, fleet_cmd

pytestmark = pytest.mark.slow


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
    import os

    return dict(os.environ, FLEET_DATA_DIR=str(tmp_path / "data"),
                FLEET_NATS_URL=f"nats://127.0.0.1:{free_port()}", FLEET_EMBEDDED_NATS="true",
                FLEET_API_PORT=str(free_port()), FLEET_HEARTBEAT_INTERVAL_SECS="1",
                FLEET_EXPECTED_PROCESSES="ingest,worker,api")


def _wait_healthy(env, timeout=90):
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run(fleet_cmd("health", "--json"), env=env, capture_output=True, timeout=30)
        if result.returncode == 0:
            return json.loads(result.stdout)
        assert time.monotonic() < deadline, result.stdout.decode()[-2000:]
        time.sleep(0.5)


def test_fleet_up_starts_the_procfile_and_stops_on_sigterm(tmp_path):
    """Every Procfile process comes up healthy; SIGTERM stops them all."""
    env = _env(tmp_path)
    proc = subprocess.Popen(fleet_cmd("up", "--procfile", str(ROOT / "Procfile")), env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        report = _wait_healthy(env)
        assert {c["name"] for c in report["components"]} >= {"nats", "ingest", "worker", "api"}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert b"ingest" in out and b"nats" in out and b"api" in out


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
        _wait_healthy(env)
        (watched / "mod.py").write_text("x = 2\n")
        deadline = time.monotonic() + 30
        while b"restarting ingest" not in output.read_bytes():
            assert time.monotonic() < deadline, output.read_text()[-2000:]
            time.sleep(0.2)
        _wait_healthy(env)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert output.read_text().count("starting nats") == 1
