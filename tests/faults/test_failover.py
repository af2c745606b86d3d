"""Failover of the single writer: a replica takes the lease over when the primary's host is lost."""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import threading
import time
import uuid

import pytest

from events.errors import LeaseTaken, NotFound
from events.log import EventLog
from ops.simulate import simulate
from ops.wiring import lease_key, sdlc_stream
from tests.support.cli import fleet_cmd, settings_env
from tests.support.wait import wait_until
from workers.ingest.lease import WriterLease
from workers.natsio.client import connect
from workers.natsio.publish import publish_events
from workers.natsio.streams import ensure_stream
from workers.shipper.shipper import last_shipped

pytestmark = pytest.mark.slow

TTL = 3


@pytest.fixture
def hosts(settings, tmp_path):
    """A primary's and a replica's settings (each its own data directory), one LOG stream."""
    stream = f"LOG_{uuid.uuid4().hex[:8]}"
    primary = settings.with_overrides(log_stream=stream, data_dir=tmp_path / "primary")
    replica = settings.with_overrides(log_stream=stream, data_dir=tmp_path / "replica")
    return primary, replica


def env_of(s, **extra) -> dict[str, str]:
    return settings_env(s, FLEET_LOG_STREAM=s.log_stream, FLEET_LOG_SHIPPING="true",
                        FLEET_LEASE_TTL_SECS=str(TTL), FLEET_REPLICA_NAME="replica-b",
                        FLEET_INGEST_BATCH_MAX="200", **extra)


def head_of(s) -> int:
    try:
        with EventLog(s.log_path, readonly=True) as event_log:
            return event_log.head
    except NotFound:
        return 0


async def shipped_head(s) -> int:
    nc = await connect(s.nats_url, name="test")
    last, _ = await last_shipped(nc.jetstream(), s.log_stream)
    await nc.drain()
    return last


async def caught_up(s) -> bool:
    return head_of(s) == await shipped_head(s)


class Producer(threading.Thread):
    """Publishes a simulated workload at a steady rate, beside everything else."""

    def __init__(self, settings, events, rate: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.events, self.rate = settings, events, rate
        self.report = None

    def run(self) -> None:
        async def main():
            nc = await connect(self.settings.nats_url, name="test-producer")
            await ensure_stream(nc.jetstream(), sdlc_stream(self.settings))
            self.report = await publish_events(nc, self.events, prefix=self.settings.subject_prefix,
                                               rate=self.rate)
            await nc.drain()
        asyncio.run(main())


def test_take_over_after_the_primary_host_is_lost(hosts):
    """kill -9 the primary's ingest and delete its data directory while events keep coming; the
    replica takes the lease over: every event once in its log, the chain intact, and the old
    primary, started again, refuses to write."""
    primary, replica = hosts
    events = list(simulate(4000, seed=21))
    producer = Producer(primary, events, rate=1000)
    producer.start()
    ingest = subprocess.Popen(fleet_cmd("ingest"), env=env_of(primary), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    follower = subprocess.Popen(fleet_cmd("replica"), env=env_of(replica), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
    try:
        asyncio.run(wait_until(lambda: head_of(replica) >= 1000, timeout_secs=60, interval_secs=0.1,
                               message="the replica did not follow the primary"))
        ingest.kill()  # the primary's host is lost, its disk with it
        ingest.wait(10)
        shutil.rmtree(primary.data_dir)
        asyncio.run(wait_until(lambda: caught_up(replica), timeout_secs=30,
                               interval_secs=0.2, message="the replica did not catch up with LOG"))
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(30) == 0, follower.stderr.read().decode()[-2000:]
        took_over = time.monotonic()
        new_primary = subprocess.Popen(fleet_cmd("ingest", "--take-over"), env=env_of(replica),
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            producer.join(60)
            assert producer.report is not None and producer.report.published == len(events)
            asyncio.run(wait_until(lambda: head_of(replica) >= len(events), timeout_secs=90,
                                   interval_secs=0.2, message=lambda: f"new primary at {head_of(replica)}"))
            assert time.monotonic() - took_over < 60
            # The old primary comes back (an empty data directory: its disk was lost).
            old = subprocess.run(fleet_cmd("ingest", "--until-idle", "1"), env=env_of(primary),
                                 capture_output=True, text=True, timeout=60)
            assert old.returncode == 1
            assert "is held by" in old.stderr and "refuses to write" in old.stderr
            assert head_of(primary) == 0
        finally:
            new_primary.send_signal(signal.SIGTERM)
            out, err = new_primary.communicate(timeout=60)
        assert new_primary.returncode == 0, err.decode()[-2000:]
        summary = dict(part.split("=") for part in out.decode().split())
        assert int(summary["shipped"]) == int(summary["head"]) == len(events)
        # It ingested from the checkpoint shipped with the rows, not from the stream's start.
        assert int(summary["duplicates"]) < 1000, summary
    finally:
        for process in (ingest, follower):
            if process.poll() is None:
                process.kill()
                process.wait(10)
    with EventLog(replica.log_path, readonly=True) as event_log:
        ids = [e.event_id for batch in event_log.read() for e in batch]
        report = event_log.verify()
    assert len(ids) == len(set(ids)) == len(events)
    assert set(ids) == {e.event_id for e in events}
    assert report.ok
    assert asyncio.run(shipped_head(replica)) == len(events)


def test_a_lease_held_by_a_live_writer_is_refused_and_a_lost_one_noticed(hosts):
    """Another data directory's ingest is refused while the lease is renewed; a writer whose lease
    was replaced stops writing (check() raises) and says who holds it now."""
    primary, replica = hosts

    async def main():
        nc = await connect(primary.nats_url, name="test")
        js = nc.jetstream()
        first = WriterLease(js, lease_key(primary), primary.data_dir, ttl_secs=TTL)
        await first.acquire()
        second = WriterLease(js, lease_key(primary), replica.data_dir, ttl_secs=TTL)
        with pytest.raises(LeaseTaken, match="is held by .* refuses to write"):
            await second.acquire()
        again = WriterLease(js, lease_key(primary), primary.data_dir, ttl_secs=TTL)
        await again.acquire()  # the same data directory's next process: its own lease
        await first.renew()  # the revision moved on: the first process has lost it
        with pytest.raises(LeaseTaken, match="was taken over"):
            first.check()
        again.check()
        await again.release()
        await second.acquire()  # released: free at once
        second.check()
        await second.release()
        await nc.drain()

    asyncio.run(main())
