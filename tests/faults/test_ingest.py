"""The ingest process killed with kill -9 around its commit: nothing lost, nothing twice."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import uuid

import pytest

from events.codec import encode_event
from ops.wiring import open_log
from tests.support.cli import fleet_cmd, settings_env
from tests.support.ingest import publish_raw
from tests.support.issues import make_issue


@pytest.mark.slow
def test_kill_9_between_commit_and_ack_loses_nothing_and_duplicates_nothing(settings):
    """A worker killed after committing but before acking: the redelivery is a no-op."""
    events = [make_issue(i, event_id=str(uuid.uuid4())) for i in range(300)]
    asyncio.run(publish_raw(settings, [encode_event(e) for e in events]))
    env = settings_env(settings, FLEET_FAILPOINT="after_commit", FLEET_INGEST_ACK_WAIT_SECS="1")
    crashed = subprocess.run(fleet_cmd("ingest", "--until-idle", "1"), env=env, capture_output=True, timeout=60)
    assert crashed.returncode == -signal.SIGKILL
    with open_log(settings, readonly=True) as log:
        committed = log.head
    assert committed > 0

    env.pop("FLEET_FAILPOINT")
    done = subprocess.run(fleet_cmd("ingest", "--until-idle", "2", "--json"), env=env,
                          capture_output=True, timeout=60, check=True)
    summary = json.loads(done.stdout)
    assert summary["head"] == 300
    assert summary["appended"] == 300 - committed
    assert summary["gone"] == 0 and summary["rewinds"] in (0, 1)  # 1: deliveries were in flight
    with open_log(settings, readonly=True) as log:
        assert [e.event_id for b in log.read() for e in b] == [e.event_id for e in events]
        assert log.verify().ok


@pytest.mark.slow
def test_kill_9_with_deliveries_received_but_not_committed_loses_nothing(settings):
    """A worker killed holding uncommitted deliveries, with more on the wire: the next worker
    must not ack them along with later messages (before the fix, it lost them for good)."""
    events = [make_issue(i, event_id=str(uuid.uuid4())) for i in range(3000)]
    asyncio.run(publish_raw(settings, [encode_event(e) for e in events]))
    env = settings_env(settings, FLEET_FAILPOINT="before_commit", FLEET_INGEST_BATCH_MAX="100")
    crashed = subprocess.run(fleet_cmd("ingest", "--until-idle", "1"), env=env, capture_output=True,
                             timeout=60)
    assert crashed.returncode == -signal.SIGKILL
    with open_log(settings, readonly=True) as log:
        assert 0 < log.head < 3000

    env.pop("FLEET_FAILPOINT")
    done = subprocess.run(fleet_cmd("ingest", "--until-idle", "1", "--json"), env=env,
                          capture_output=True, timeout=60, check=True)
    assert json.loads(done.stdout)["rewinds"] == 1
    with open_log(settings, readonly=True) as log:
        assert [e.event_id for b in log.read() for e in b] == [e.event_id for e in events]
        assert log.verify().ok
