"""`fleet up --export systemd DIR` writes unit files that run this installation's `fleet` on the data dir."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ops.procfile import FLEET_PROCESSES
from ops.systemd import render_systemd
from tests.support.cli import fleet

FLEET = str(Path(sys.executable).parent / "fleet")


def _unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(text)
    return parser


def _environment(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line.startswith("Environment=")]
    pairs = [line.removeprefix('Environment="').removesuffix('"').split("=", 1) for line in lines]
    return dict(pairs)


@pytest.fixture
def exported(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLEET_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("FLEET_API_PORT", "9090")
    monkeypatch.setenv("FLEET_GITHUB_SECRET", "s3cret")
    monkeypatch.setenv("FLEET_STOP_GRACE_SECS", "45")
    code, out, err = fleet(monkeypatch, capsys, "up", "--export", "systemd", str(tmp_path / "units"))
    assert code == 0, err
    return tmp_path / "units", out, err


def test_one_service_per_process_under_one_target(exported):
    """graphfleet.target wants a target per process, each wanting its service."""
    units, out, err = exported
    names = sorted(p.name for p in units.iterdir())
    assert names == sorted(["graphfleet.target"] + [f"graphfleet-{n}.{k}" for n in FLEET_PROCESSES
                                                    for k in ("target", "service")])
    assert set(out.split()) == {str(units / n) for n in names}
    assert "systemctl enable --now graphfleet.target" in err
    master = _unit((units / "graphfleet.target").read_text())
    assert set(master["Unit"]["Wants"].split()) == {f"graphfleet-{n}.target" for n in FLEET_PROCESSES}
    assert master["Install"]["WantedBy"] == "multi-user.target"
    assert _unit((units / "graphfleet-worker.target").read_text())["Unit"]["Wants"] == "graphfleet-worker.service"


def test_each_service_runs_this_installations_fleet_on_the_data_dir(exported, tmp_path):
    """ExecStart names the absolute `fleet` of this venv; the data dir and settings are in its environment."""
    units, _, _ = exported
    for name, command in FLEET_PROCESSES.items():
        text = (units / f"graphfleet-{name}.service").read_text()
        service = _unit(text)["Service"]
        assert service["ExecStart"] == FLEET + command.removeprefix("fleet")
        env = _environment(text)
        assert env["FLEET_DATA_DIR"] == str((tmp_path / "data").resolve())
        assert env["FLEET_API_PORT"] == "9090"
        assert "s3cret" not in text and "FLEET_GITHUB_SECRET" not in env  # secrets: EnvironmentFile
        assert "FLEET_TESTING" not in env
        assert service["EnvironmentFile"] == "-/etc/graphfleet/env"
        assert service["Restart"] == "always" and service["TimeoutStopSec"] == "45"
        assert service["KillMode"] == "control-group" and service["KillSignal"] == "SIGTERM"
        assert service["WorkingDirectory"] == str(tmp_path.resolve())
        unit = _unit(text)["Unit"]
        if name == "nats":
            assert "After" not in unit
        else:  # started after NATS, stopped before it
            assert unit["After"] == "graphfleet-nats.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_accepts_the_units(exported):
    """`systemd-analyze verify` finds nothing wrong with the services."""
    units, _, _ = exported
    services = sorted(str(p) for p in units.glob("*.service"))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *services], capture_output=True,
                            text=True, cwd=units, check=False)
    assert result.returncode == 0, result.stderr


def test_commands_are_quoted_for_systemd(tmp_path):
    """A Procfile line with spaces, % or shell syntax reaches systemd unchanged."""
    units = render_systemd({"nats": "fleet nats", "worker-next": '/opt/next/bin/fleet worker --name "a b"',
                            "piped": "fleet ingest 2>&1 | logger"},
                           data_dir=tmp_path, grace_secs=30, environ={"PATH": "/usr/bin"})
    assert _unit(units["graphfleet-nats.service"])["Service"]["ExecStart"] == f"{FLEET} nats"
    assert _unit(units["graphfleet-worker-next.service"])["Service"]["ExecStart"] == \
        '/opt/next/bin/fleet worker --name "a b"'
    assert _unit(units["graphfleet-piped.service"])["Service"]["ExecStart"] == \
        f'/bin/sh -c "exec {FLEET} ingest 2>&1 | logger"'


def test_only_exports_the_chosen_processes(monkeypatch, capsys, tmp_path):
    """--only applies to the export too."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FLEET_DATA_DIR", str(tmp_path / "data"))
    code, _, err = fleet(monkeypatch, capsys, "up", "--only", "ingest,worker", "--export", "systemd",
                         str(tmp_path / "units"))
    assert code == 0, err
    assert {p.name for p in (tmp_path / "units").glob("*.service")} == {"graphfleet-ingest.service",
                                                                       "graphfleet-worker.service"}
    assert "After" not in _unit((tmp_path / "units" / "graphfleet-ingest.service").read_text())["Unit"]
