"""`fleet worker` stops within its grace period mid-rebuild: SIGTERM pauses the rebuild after the chunk in
hand (it used to run on to the end, and `fleet up` under honcho SIGKILLed it), and the next start resumes."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess

import pytest

from tests.support.changes import graph_env, graph_settings
from tests.support.cli import fleet_cmd
from tests.support.projection import simulated_log
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

EVENTS = 60_000  # six 10,000-event chunks: a rebuild that takes seconds


def _worker(env, stderr_path):
    with open(stderr_path, "ab") as err:
        return subprocess.Popen(fleet_cmd("worker"), env=env, stdout=subprocess.DEVNULL, stderr=err)


def _logged(path, msg: str) -> list[dict]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("msg") == msg]


def test_sigterm_pauses_a_rebuild_and_the_next_start_finishes_it(settings, tmp_path):
    """The worker exits 0 soon after SIGTERM, the rebuild paused short of the head; restarted, it goes on."""
    s = graph_settings(settings)
    head = simulated_log(s.log_path, EVENTS)
    env = graph_env(s, FLEET_HEARTBEAT_INTERVAL_SECS="1")
    stderr = tmp_path / "worker.log"
    worker = _worker(env, stderr)
    try:
        asyncio.run(wait_until(lambda: _logged(stderr, "rebuild started"), timeout_secs=60, interval_secs=0.05,
                               message=lambda: stderr.read_text()[-3000:]))
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, stderr.read_text()[-3000:]  # FLEET_STOP_GRACE_SECS' default
    finally:
        worker.kill()
    paused = _logged(stderr, "rebuild paused by the stop")
    assert len(paused) == 1 and 0 < paused[0]["position"] < head and paused[0]["promoted"] is False, \
        stderr.read_text()[-3000:]
    assert not _logged(stderr, "rebuild done")

    worker = _worker(env, stderr)
    try:
        asyncio.run(wait_until(lambda: _logged(stderr, "rebuild done"), timeout_secs=120, interval_secs=0.2,
                               message=lambda: stderr.read_text()[-3000:]))
        done = _logged(stderr, "rebuild done")[0]
        assert done["resumed_from"] == paused[0]["position"] and done["position"] == head and done["promoted"]
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    finally:
        worker.kill()
    assert not re.search(r"Traceback", stderr.read_text())
