"""A 3-server JetStream cluster with R3 streams rides out the loss of one server (issue 21)."""

from __future__ import annotations

import asyncio

import nats.errors
import pytest
from nats.js.errors import APIError, NoStreamResponseError

from events.codec import encode_event
from ops.health import gather
from ops.settings import load_settings
from ops.wiring import ingest_config, log_writer, open_log, replica_config, sdlc_stream, ship_config
from tests.support.cluster import Cluster
from tests.support.issues import make_issue
from tests.support.wait import wait_until
from workers.ingest.consumer import IngestWorker
from workers.natsio.client import connect
from workers.natsio.streams import ensure_stream
from workers.shipper.replica import LogReplica
from workers.shipper.shipper import LogShipper

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Three nats-servers routed to each other, each with its own store directory."""
    c = Cluster(tmp_path_factory.mktemp("cluster")).start()
    yield c
    c.stop()


def _settings(cluster, tmp_path, name="data", **extra):
    return load_settings({}, data_dir=tmp_path / name, nats_url=cluster.url, embedded_nats=False,
                         stream_replicas=3, stream="SDLC", subject_prefix="sdlc",
                         heartbeat_interval_secs=1, heartbeat_stale_secs=3, **extra)


async def _publish_until_acked(js, subject: str, body: bytes, msg_id: str) -> None:
    """A producer's contract: publish again with the same id until JetStream acks it."""
    while True:
        try:
            await js.publish(subject, body, timeout=2, headers={"Nats-Msg-Id": msg_id})
            return
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError, NoStreamResponseError,
                nats.errors.ConnectionReconnectingError, APIError):
            await asyncio.sleep(0.1)


async def _ready_stream(js, spec) -> None:
    async def attempt():
        try:
            await ensure_stream(js, spec)
            return True
        except Exception:  # the cluster's meta leader is still being elected
            return False
    await wait_until(attempt, timeout_secs=30, interval_secs=0.5, message="the R3 stream was not created")


def test_kill_one_server_under_load_every_event_logged_once(cluster, tmp_path):
    """kill -9 one of three servers while events are published, ingested, shipped and replicated,
    then restart it: every event is logged exactly once, the chain verifies, the replica's log is
    the primary's, and health names the lost server."""
    settings = _settings(cluster, tmp_path)
    replica = _settings(cluster, tmp_path, name="replica")
    total = 1500
    events = [make_issue(i) for i in range(total)]

    async def main():
        nc = await connect(settings.nats_url, name="test-producer")
        js = nc.jetstream()
        await _ready_stream(js, sdlc_stream(settings))
        info = await js.stream_info(settings.stream)
        assert info.config.num_replicas == 3
        ingest_nc = await connect(settings.nats_url, name="test-ingest")
        writer = log_writer(settings)
        stop = asyncio.Event()
        worker = IngestWorker(ingest_nc, writer, ingest_config(settings))
        ingesting = asyncio.create_task(worker.run(stop))
        shipper = LogShipper(ingest_nc, settings.log_path, ship_config(settings))
        await shipper.setup()
        shipping = asyncio.create_task(shipper.run(stop))
        replica_nc = await connect(settings.nats_url, name="test-replica")
        follower = LogReplica(replica_nc, replica.log_path, replica_config(replica))
        following = asyncio.create_task(follower.run(stop))
        published = 0

        async def produce(upto: int):
            nonlocal published
            while published < upto:
                event = events[published]
                await _publish_until_acked(js, "sdlc.test.issue.opened", encode_event(event),
                                           event.event_id)
                published += 1

        await produce(500)
        # The stream's leader: the server whose loss costs the most.
        victim = cluster.server((await js.stream_info(settings.stream)).cluster.leader)
        victim.stop(kill=True)
        producing = asyncio.create_task(produce(1000))

        async def lost_named():
            report = await gather(settings, expected=())
            down = {c.name for c in report.culprits}
            return down if any(victim.address in name or victim.server_name in name
                               for name in down) else None
        named = await wait_until(lost_named, timeout_secs=30, interval_secs=0.5,
                                 message="health did not name the lost server")
        assert any(n == f"nats server {victim.server_name}" or victim.address in n for n in named)
        await producing
        victim.start()
        await produce(total)

        def logged():
            with open_log(settings, readonly=True) as event_log:
                return event_log.head >= total and follower.stats.position >= total
        await wait_until(logged, timeout_secs=60, interval_secs=0.2, message="not every event logged")

        async def healthy_again():
            report = await gather(settings, expected=())
            return not [c for c in report.culprits if c.kind == "nats"]
        await wait_until(healthy_again, timeout_secs=30, interval_secs=0.5,
                         message="health still names a server after its restart")
        stop.set()
        await ingesting
        await shipping
        await following
        writer.close()
        await ingest_nc.drain()
        await replica_nc.drain()
        await nc.drain()

    asyncio.run(main())
    with open_log(settings, readonly=True) as event_log:
        ids = [e.event_id for batch in event_log.read() for e in batch]
        report = event_log.verify()
    assert sorted(ids) == sorted(e.event_id for e in events)
    assert len(ids) == len(set(ids)) == total
    assert report.problems == ()
    with open_log(replica, readonly=True) as copy, open_log(settings, readonly=True) as original:
        assert [r for b in copy.rows() for r in b] == [r for b in original.rows() for r in b]


def test_every_fleet_stream_and_bucket_is_replicated(cluster, tmp_path):
    """With FLEET_STREAM_REPLICAS=3 the SDLC and GRAPH streams and the heartbeat bucket keep 3 copies."""
    from ops.startup import Startup
    from ops.wiring import graph_stream
    from workers.natsio.heartbeat import HEARTBEAT_BUCKET

    settings = _settings(cluster, tmp_path, graph_stream="GRAPH_R3", graph_subject_prefix="graphr3")

    async def main():
        _, nc = await Startup(settings, asyncio.Event()).nats(
            "test", streams=[sdlc_stream(settings), graph_stream(settings)])
        js = nc.jetstream()
        replicas = {name: (await js.stream_info(name)).config.num_replicas
                    for name in (settings.stream, "GRAPH_R3", f"KV_{HEARTBEAT_BUCKET}")}
        await nc.drain()
        return replicas

    assert asyncio.run(main()) == {"SDLC": 3, "GRAPH_R3": 3, "KV_fleet_heartbeats": 3}
