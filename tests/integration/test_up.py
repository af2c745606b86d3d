"""`fleet up` runs the Procfile; `fleet dev` restarts processes on code changes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import pytest

from ops.embedded import free_port
from ops.procfile import FLEET_PROCESSES, read_procfile
from tests.support.cli import fleet_cmd, fleet_health, healthy_report
from tests.support.paths import ROOT
from tests.support.wait import wait_until

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


def test_fleet_up_starts_the_procfile_and_stops_on_sigterm(tmp_path):
    """Every Procfile process comes up healthy; SIGTERM stops them all."""
    env = _env(tmp_path)
    proc = subprocess.Popen(fleet_cmd("up", "--procfile", str(ROOT / "Procfile")), env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        report = asyncio.run(wait_until(lambda: healthy_report(env), timeout_secs=90, interval_secs=0.5,
                                        message=lambda: fleet_health(env, "--json").stdout.decode()[-2000:]))
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
        asyncio.run(wait_until(lambda: healthy_report(env), timeout_secs=90, interval_secs=0.5,
                               message=lambda: fleet_health(env, "--json").stdout.decode()[-2000:]))
        (watched / "mod.py").write_text("x = 2\n")
        asyncio.run(wait_until(lambda: b"restarting ingest" in output.read_bytes(), timeout_secs=30,
                               interval_secs=0.2, message=lambda: output.read_text()[-2000:]))
        asyncio.run(wait_until(lambda: healthy_report(env), timeout_secs=90, interval_secs=0.5,
                               message=lambda: fleet_health(env, "--json").stdout.decode()[-2000:]))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert output.read_text().count("starting nats") == 1
