"""Configuration errors stop a `fleet` process with exit code 2."""

from __future__ import annotations

import subprocess

from tests.support.cli import fleet_cmd


def test_the_cli_exits_2_on_bad_configuration(tmp_path):
    """A malformed variable stops any command with exit code 2 and the message."""
    env = {"FLEET_INGEST_BATCH_MAX": "lots", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(fleet_cmd("log", "stats"), env=env, capture_output=True, cwd=tmp_path)
    assert result.returncode == 2
    assert b"FLEET_INGEST_BATCH_MAX" in result.stderr
