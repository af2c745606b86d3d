"""`fleet project` as a process of its own: caught up, then a poison event."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from projections.model.ontology import VERSION as V
from tests.support.projection import append, garbage, small_project

FLEET = str(Path(sys.executable).parent / "fleet")


@pytest.fixture
def data_dir(tmp_path):
    append(tmp_path / "log.db", small_project())
    return tmp_path


def test_project_runs_until_caught_up_and_reports_poison(data_dir):
    """`fleet project` builds the first version, applies live entries, exits 1 on poison."""
    run = subprocess.run([FLEET, "--data-dir", str(data_dir), "project", "--until-caught-up", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["version"] == V and summary["lag"] == 0 and len(summary["rebuilds"]) == 1
    append(data_dir / "log.db", [garbage(1)])
    run = subprocess.run([FLEET, "--data-dir", str(data_dir), "project", "--until-caught-up", "--json"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 1
    assert json.loads(run.stdout)["poisoned"] == 1
    assert '"poison event skipped"' in run.stderr and '"position": 16' in run.stderr
    listing = subprocess.run([FLEET, "--data-dir", str(data_dir), "projections", "poison", "graph"],
                             capture_output=True, text=True, timeout=60)
    assert "16" in listing.stdout and "poison-1" in listing.stdout and "not_json" in listing.stdout
