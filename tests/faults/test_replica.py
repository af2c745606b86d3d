"""`fleet replica`: a log identical to the primary's, built from LOG, projected to the same digest."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

from events.errors import NotFound
from events.log import EventLog
from events.shipped import decode_row, encode_row
from ops.embedded import free_port
from ops.wiring import log_subject, ship_config
from projections.model.ontology import VERSION
from projections.store.graph import OUTBOX_PRUNED, OUTBOX_SEQ, GraphStore
from projections.versions.digest import digest
from tests.support.cli import fleet_cmd, settings_env
from tests.support.projection import simulated_log
from tests.support.wait import wait_until
from workers.natsio.client import connect
from workers.shipper.shipper import LogShipper

pytestmark = pytest.mark.slow


@pytest.fixture
def pair(settings, tmp_path):
    """The primary's settings and a replica's (its own data directory), sharing one LOG stream."""
    stream = f"LOG_{uuid.uuid4().hex[:8]}"
    primary = settings.with_overrides(log_stream=stream, data_dir=tmp_path / "primary")
    replica = settings.with_overrides(log_stream=stream, data_dir=tmp_path / "replica")
    return primary, replica


def ship(s) -> int:
    async def main():
        nc = await connect(s.nats_url, name="test-ship")
        shipper = LogShipper(nc, s.log_path, ship_config(s))
        await shipper.setup()
        while await shipper.ship_once():
            pass
        await nc.drain()
        return shipper.shipped
    return asyncio.run(main())


def env_of(s, **extra) -> dict[str, str]:
    return settings_env(s, FLEET_LOG_STREAM=s.log_stream, FLEET_REPLICA_NAME="replica-test", **extra)


def run(s, *args, timeout=180, **extra) -> subprocess.CompletedProcess:
    return subprocess.run(fleet_cmd(*args), env=env_of(s, **extra), capture_output=True, text=True,
                          timeout=timeout)


def verify(s) -> dict:
    result = run(s, "verify", "--json")
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]
    return json.loads(result.stdout)


def graph_digest(s) -> tuple[int, str]:
    with GraphStore(s.projections_dir / "graph" / f"v{VERSION}") as store:
        d = digest(store)
    return d.position, d.hexdigest


def outbox(s) -> tuple[int, int]:
    """The replica projection's outbox: records written, records pruned."""
    with GraphStore(s.projections_dir / "graph" / f"v{VERSION}") as store:
        return store.meta_ints(OUTBOX_SEQ, OUTBOX_PRUNED)


def project_primary(s) -> None:
    result = run(s, "project", "--until-caught-up", "--json")
    assert result.returncode == 0, result.stderr[-2000:]


def log_head(s) -> int:
    try:
        with EventLog(s.log_path, readonly=True) as event_log:
            return event_log.head
    except NotFound:
        return 0


def test_a_replica_has_the_primarys_head_hash_and_projection_digest(pair):
    """Built from LOG, the replica's log verifies with the primary's head hash at the same position,
    and its projection (same code) has the primary's digest."""
    primary, replica = pair
    simulated_log(primary.log_path, 3000, seed=11)
    assert ship(primary) == 3000
    project_primary(primary)
    result = run(replica, "replica", "--until-idle", "0.5", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["position"] == summary["primary"] == 3000 and summary["lag"] == 0
    assert summary["projection_position"] == 3000
    assert verify(replica) == verify(primary)  # same head, same head hash, no problems
    assert graph_digest(replica) == graph_digest(primary)
    # Nobody publishes a replica's change records: its outbox is pruned as it goes (5,000 a step).
    assert 0 < outbox(replica)[1] <= outbox(replica)[0]


def test_a_replica_killed_mid_stream_resumes_exactly(pair):
    """kill -9 while it appends; restarted, it goes on from its own head: the same log, the same digest."""
    primary, replica = pair
    total = 30_000
    simulated_log(primary.log_path, total, seed=12)
    assert ship(primary) == total
    project_primary(primary)
    process = subprocess.Popen(fleet_cmd("replica"), env=env_of(replica, FLEET_PROJECTOR_BATCH_MAX="500"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while log_head(replica) == 0 and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.005)
        process.kill()
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
    at_kill = log_head(replica)
    assert 0 < at_kill < total, f"killed at {at_kill} of {total}"
    result = run(replica, "replica", "--until-idle", "0.5", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["applied"] == total - at_kill
    assert verify(replica) == verify(primary)
    assert graph_digest(replica) == graph_digest(primary)


def test_a_row_that_does_not_chain_is_refused_with_a_message(pair):
    """A LOG row whose hash does not follow the replica's tail stops the replica (exit 1), naming
    the row; nothing of it is appended."""
    primary, replica = pair
    simulated_log(primary.log_path, 12, seed=13)
    with EventLog(primary.log_path, readonly=True) as event_log:
        rows = [r for batch in event_log.rows() for r in batch]

    async def publish(rows):
        nc = await connect(primary.nats_url, name="test")
        await LogShipper(nc, primary.log_path, ship_config(primary)).setup()  # creates the stream
        for row in rows:
            await nc.jetstream().publish(log_subject(primary), encode_row(row),
                                         headers={"Nats-Msg-Id": str(row[0])})
        await nc.drain()

    asyncio.run(publish(rows[:10]))
    assert run(replica, "replica", "--until-idle", "0.3").returncode == 0
    bad = decode_row(encode_row(rows[10]))
    asyncio.run(publish([(*rows[10][:5], bad.payload.replace("}", ', "injected": true}', 1),
                          *rows[10][6:])]))
    result = run(replica, "replica", "--until-idle", "0.5")
    assert result.returncode == 1
    assert f"shipped row at position 11 (event {rows[10][1]}) carries hash" in result.stderr
    assert log_head(replica) == 10


def test_replica_lag_shows_in_health_readyz_and_metrics(pair):
    """A running replica reports its lag to the primary: a `fleet health` line, and
    `fleet api --replica` is ready and exports fleet_replica_lag."""
    primary, replica = pair
    simulated_log(primary.log_path, 400, seed=14)
    ship(primary)
    port = free_port()
    env = env_of(replica, FLEET_HEARTBEAT_INTERVAL_SECS="1", FLEET_HEARTBEAT_STALE_SECS="3")
    processes = [subprocess.Popen(fleet_cmd(*args), env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
                 for args in (("replica",), ("api", "--replica", "--port", str(port)))]
    base = f"http://127.0.0.1:{port}"

    def replica_line():
        result = subprocess.run(fleet_cmd("health", "--json"), capture_output=True, timeout=30,
                                env={**env, "FLEET_EXPECTED_PROCESSES": "replica-test"})
        lines = {c["name"]: c for c in json.loads(result.stdout)["components"]} if result.stdout else {}
        line = lines.get("replica replica-test log")
        return (result.returncode, line) if line and line["data"]["position"] == 400 else None

    def get(path):
        try:
            with urllib.request.urlopen(base + path, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except OSError:
            return None

    try:
        code, line = asyncio.run(wait_until(replica_line, timeout_secs=60, interval_secs=0.5,
                                            message="no replica line in fleet health"))
        assert code == 0 and line["state"] == "ok"
        assert line["detail"].startswith("position 400, primary 400, lag 0 to the primary")
        ready = asyncio.run(wait_until(lambda: (r := get("/readyz")) and r[0] == 200 and r,
                                       timeout_secs=60, interval_secs=0.5, message="replica api not ready"))
        assert json.loads(ready[1])["ready"] is True
        status, _ = asyncio.run(wait_until(
            lambda: (r := get("/metrics")) and "fleet_replica_lag" in r[1] and r, timeout_secs=30,
            interval_secs=0.5, message="no fleet_replica_lag on /metrics"))
        assert status == 200
        assert get("/graph/counts")[0] == 200  # the replica's projection answers queries
        # A running replica prunes its whole outbox: nobody publishes its change records.
        asyncio.run(wait_until(lambda: outbox(replica)[1] == outbox(replica)[0] > 0, timeout_secs=30,
                               message=lambda: f"outbox (written, pruned): {outbox(replica)}"))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(30)
