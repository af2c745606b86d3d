"""The log shipper: every committed row on the LOG stream once, in order, resumed after a crash."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid

import pytest

from events.errors import ChainBroken
from events.log import EventLog
from events.shipped import decode_row
from ops.simulate import simulate
from ops.wiring import log_subject, sdlc_stream, ship_config
from tests.support.cli import fleet_cmd, settings_env
from tests.support.projection import simulated_log
from workers.natsio.client import connect
from workers.natsio.publish import publish_events
from workers.natsio.streams import ensure_stream
from workers.shipper.shipper import LogShipper, ShippedBehind


@pytest.fixture
def ship_settings(settings):
    """The test's settings with a LOG stream of its own."""
    return settings.with_overrides(log_stream=f"LOG_{uuid.uuid4().hex[:8]}", log_shipping=True)


async def read_log_stream(nc, settings) -> list:
    """Every message of the test's LOG stream: (stream sequence, Nats-Msg-Id, shipped row)."""
    js = nc.jetstream()
    info = await js.stream_info(settings.log_stream)
    sub = await js.subscribe(log_subject(settings), ordered_consumer=True)
    out = []
    try:
        for _ in range(info.state.messages):
            msg = await sub.next_msg(timeout=5)
            out.append((msg.metadata.sequence.stream, msg.headers["Nats-Msg-Id"], decode_row(msg.data)))
    finally:
        await sub.unsubscribe()
    return out


def log_rows(settings) -> list[tuple]:
    with EventLog(settings.log_path, readonly=True) as event_log:
        return [row for batch in event_log.rows(batch_size=10_000) for row in batch]


async def ship_all(shipper: LogShipper) -> int:
    total = 0
    while n := await shipper.ship_once():
        total += n
    return total


def test_rows_ship_in_order_with_position_ids_and_resume(ship_settings):
    """Each row is one message whose stream sequence and Nats-Msg-Id are its position, with the
    log's hash; a new shipper resumes after the stream's last message and ships only what is new."""
    s = ship_settings
    simulated_log(s.log_path, 2500, seed=3)

    async def main():
        nc = await connect(s.nats_url, name="test-ship")
        shipper = LogShipper(nc, s.log_path, ship_config(s))
        assert await shipper.setup() == 0
        assert await ship_all(shipper) == 2500
        simulated_log(s.log_path, 3100, seed=3, start=2500)
        again = LogShipper(nc, s.log_path, ship_config(s))
        assert await again.setup() == 2500
        assert await ship_all(again) == 600
        info = await nc.jetstream().stream_info(s.log_stream)
        messages = await read_log_stream(nc, s)
        await nc.drain()
        return info, messages

    info, messages = asyncio.run(main())
    rows = log_rows(s)
    assert info.config.deny_delete and info.config.deny_purge
    assert (info.state.first_seq, info.state.last_seq, info.state.messages) == (1, 3100, 3100)
    assert [(seq, msg_id) for seq, msg_id, _ in messages] == [(p, str(p)) for p in range(1, 3101)]
    assert [shipped.row() for _, _, shipped in messages] == rows


def test_the_log_stream_refuses_delete_and_purge(ship_settings):
    """Nobody removes shipped rows: JetStream refuses a delete or a purge of LOG."""
    s = ship_settings
    simulated_log(s.log_path, 10)

    async def main():
        nc = await connect(s.nats_url, name="test-ship")
        shipper = LogShipper(nc, s.log_path, ship_config(s))
        await shipper.setup()
        await ship_all(shipper)
        js = nc.jetstream()
        errors = []
        for attempt in (lambda: js.delete_msg(s.log_stream, 3), lambda: js.purge_stream(s.log_stream)):
            try:
                await attempt()
            except Exception as e:  # noqa: BLE001 - the refusal is what is tested
                errors.append(str(e))
        info = await js.stream_info(s.log_stream)
        await nc.drain()
        return errors, info.state.messages

    errors, messages = asyncio.run(main())
    assert len(errors) == 2 and messages == 10


def test_a_log_with_another_history_is_refused(ship_settings, tmp_path):
    """A log whose row at the stream's last position has another hash, or that ends before the
    stream does, does not ship: different histories never mix in LOG."""
    s = ship_settings
    simulated_log(s.log_path, 50, seed=1)
    other = s.with_overrides(data_dir=tmp_path / "other")
    simulated_log(other.log_path, 80, seed=2)
    short = s.with_overrides(data_dir=tmp_path / "short")
    simulated_log(short.log_path, 20, seed=1)

    async def main():
        nc = await connect(s.nats_url, name="test-ship")
        shipper = LogShipper(nc, s.log_path, ship_config(s))
        await shipper.setup()
        await ship_all(shipper)
        with pytest.raises(ChainBroken, match="different histories - refusing to ship"):
            await LogShipper(nc, other.log_path, ship_config(other)).setup()
        with pytest.raises(ShippedBehind, match="holds positions up to 50, this log .* only up to 20"):
            await LogShipper(nc, short.log_path, ship_config(short)).setup()
        await nc.drain()

    asyncio.run(main())


@pytest.mark.slow
def test_shipper_killed_mid_batch_resumes_without_skipping(ship_settings):
    """`fleet ingest` with shipping, SIGKILLed with a batch published and its acks unread;
    restarted, the LOG stream holds every position of the log exactly once."""
    s = ship_settings
    total = 6000
    events = list(simulate(total, seed=5))

    async def publish():
        nc = await connect(s.nats_url, name="test-producer")
        await ensure_stream(nc.jetstream(), sdlc_stream(s))
        report = await publish_events(nc, events, prefix=s.subject_prefix)
        await nc.drain()
        return report

    assert asyncio.run(publish()).published == total
    env = settings_env(s, FLEET_LOG_SHIPPING="true", FLEET_LOG_STREAM=s.log_stream,
                       FLEET_INGEST_BATCH_MAX="500")
    killed = subprocess.run(fleet_cmd("ingest", "--until-idle", "2"), capture_output=True, timeout=120,
                            env={**env, "FLEET_FAILPOINT": "ship_mid_batch"})
    assert killed.returncode == -9, killed.stderr.decode()[-2000:]

    async def stream_state():
        nc = await connect(s.nats_url, name="test")
        info = await nc.jetstream().stream_info(s.log_stream)
        await nc.drain()
        return info.state

    before = asyncio.run(stream_state())
    assert before.last_seq < total  # the kill came mid-way
    done = subprocess.run(fleet_cmd("ingest", "--until-idle", "1", "--json"), capture_output=True,
                          timeout=120, env=env)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    summary = json.loads(done.stdout)
    assert summary["head"] == summary["shipped"] == total

    async def read():
        nc = await connect(s.nats_url, name="test")
        messages = await read_log_stream(nc, s)
        await nc.drain()
        return messages

    messages = asyncio.run(read())
    assert [seq for seq, _, _ in messages] == list(range(1, total + 1))
    assert [shipped.row() for _, _, shipped in messages] == log_rows(s)


def test_a_replica_and_an_ingest_never_write_one_log_together(ship_settings):
    """The replica takes the ingest writer's lock: whichever comes second is refused, saying why."""
    from events.errors import LogBusy
    from ops.wiring import log_writer, replica_config
    from workers.shipper.replica import LogReplica

    s = ship_settings.with_overrides(ingest_writer="thread")

    async def main():
        nc = await connect(s.nats_url, name="test")
        replica = LogReplica(nc, s.log_path, replica_config(s))
        await replica.setup()
        with pytest.raises(LogBusy, match="run one ingest worker per log"):
            log_writer(s)
        stop = asyncio.Event()
        stop.set()
        await replica.run(stop)  # releases the lock
        writer = log_writer(s)
        with pytest.raises(LogBusy, match="`fleet ingest` and `fleet replica` do not run on one data"):
            await LogReplica(nc, s.log_path, replica_config(s)).setup()
        writer.close()
        await nc.drain()

    asyncio.run(main())
