"""Bad configuration and bad arguments stop `fleet` with exit code 2 and a message, never a traceback."""

from __future__ import annotations

import os
import subprocess

import pytest

from ops.settings import load_settings
from ops.wiring import open_log
from tests.support.cli import fleet_cmd


def _run(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    full = dict(os.environ, FLEET_DATA_DIR=str(tmp_path / "data"),
                FLEET_NATS_URL="nats://127.0.0.1:1", FLEET_STARTUP_TIMEOUT_SECS="1")
    full.update(env)
    return subprocess.run(fleet_cmd(*args), env=full, capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"FLEET_INGEST_DURABLE": "a.b"}, ["FLEET_INGEST_DURABLE", "'a.b'"]),
        ({"FLEET_STREAM": "SD.LC"}, ["FLEET_STREAM", "'SD.LC'"]),
        ({"FLEET_SUBJECT_PREFIX": "a b"}, ["FLEET_SUBJECT_PREFIX", "'a b'"]),
        ({"FLEET_STREAM_MAX_AGE_SECS": "-5"}, ["FLEET_STREAM_MAX_AGE_SECS", "-5"]),
        ({"FLEET_DEDUP_WINDOW_SECS": "1000000000000"}, ["FLEET_DEDUP_WINDOW_SECS", "1_000_000_000_000"]),
        ({"FLEET_NATS_URL": "nats://127.0.0.1:99999"}, ["FLEET_NATS_URL", "99999", "1-65535"]),
        ({"FLEET_DATA_DIR": "/dev/null"}, ["FLEET_DATA_DIR", "/dev/null", "not a directory"]),
        ({"FLEET_WORKER_THREADS": "١٢"}, ["FLEET_WORKER_THREADS", "١٢"]),
        ({"FLEET_MAX_BODY_BYTES": "-1"}, ["FLEET_MAX_BODY_BYTES", "-1"]),
        ({"FLEET_READY_MAX_LAG": "-1"}, ["FLEET_READY_MAX_LAG", "-1"]),
        ({"FLEET_CHANGES_DIFF_MAX": "-3"}, ["FLEET_CHANGES_DIFF_MAX", "-3", "resync"]),
        ({"FLEET_FOLD_BUDGET_MB": "0"}, ["FLEET_FOLD_BUDGET_MB", "0", "positive"]),
    ],
)
def test_bad_configuration_exits_2_naming_the_variable(tmp_path, env, names):
    """`fleet ingest` with a bad variable exits 2 at once, naming it and its value; no traceback."""
    result = _run(tmp_path, "ingest", "--until-idle", "1", **env)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for name in names:
        assert name in result.stderr, result.stderr


@pytest.mark.parametrize("value", ["-1", "nan", "soon"])
def test_a_bad_until_idle_is_a_usage_error(tmp_path, value):
    """`fleet ingest --until-idle -1` is refused before anything starts."""
    result = _run(tmp_path, "ingest", "--until-idle", value)
    assert result.returncode == 2, result.stderr
    assert "--until-idle" in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_a_log_position_past_sqlite_integers_is_a_usage_error(tmp_path):
    """`fleet log show 99999999999999999999999` names the argument instead of an OverflowError."""
    open_log(load_settings({}, data_dir=tmp_path / "data")).close()
    result = _run(tmp_path, "log", "show", "99999999999999999999999")
    assert result.returncode == 2, result.stderr
    assert "99999999999999999999999" in result.stderr and "Traceback" not in result.stderr, result.stderr
    missing = _run(tmp_path, "log", "show", "12")
    assert missing.returncode == 1 and "no event" in missing.stderr, missing.stderr


@pytest.mark.parametrize("name", ["worker next", "a.b", "", "x" * 65])
def test_a_worker_name_that_cannot_be_a_heartbeat_key_is_a_usage_error(tmp_path, name):
    """`fleet worker --name` becomes a key in the heartbeat bucket: refused before anything starts."""
    result = _run(tmp_path, "worker", "--name", name)
    assert result.returncode == 2 and "is not a process name" in result.stderr
    assert "Traceback" not in result.stderr
