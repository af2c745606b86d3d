"""The ingest worker against a real nats-server: exactly-once append, quarantine, shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import uuid

import pytest

from events.codec import encode_event
from ops.wiring import ingest_config, log_writer, open_log, sdlc_stream
from tests.support.cli import fleet_cmd, settings_env
from tests.support.ingest import ingest_until_idle, publish_raw
from tests.support.issues import make_issue
from tests.support.wait import wait_until
from workers.ingest.config import IngestConfig, IngestStats
from workers.ingest.consumer import IngestWorker
from workers.natsio.client import connect
from workers.natsio.publish import Publisher, publish_events
from workers.natsio.streams import ensure_stream


async def _publish_events(settings, events):
    nc = await connect(settings.nats_url, name="test")
    await ensure_stream(nc.jetstream(), sdlc_stream(settings))
    report = await publish_events(nc, events, prefix=settings.subject_prefix)
    await nc.drain()
    return report


def test_published_events_land_in_the_log_in_order(settings):
    """Every published event is appended once, in stream order, and the log verifies."""
    events = [make_issue(i, event_id=str(uuid.uuid4())) for i in range(500)]

    async def main():
        return await _publish_events(settings, events), await ingest_until_idle(settings)

    report, stats = asyncio.run(main())
    assert report.published == 500 and stats.appended == 500
    with open_log(settings, readonly=True) as log:
        assert [e.event_id for b in log.read() for e in b] == [e.event_id for e in events]
        assert log.verify().ok


def test_a_log_appended_to_behind_ingest_keeps_its_chain(settings):
    """Rows chained ahead from a tail that another writer moved are chained again: all land, densely."""
    from events.logrows import Accepted

    events = [make_issue(i, event_id=str(uuid.uuid4())) for i in range(3000)]
    logged_by_hand = [make_issue(9000 + i, event_id=str(uuid.uuid4())) for i in range(3)]
    again = events[1500]  # also logged by hand before ingest reaches it: a duplicate

    async def main():
        await _publish_events(settings, events)
        nc = await connect(settings.nats_url, name="test-ingest")
        writer = log_writer(settings)  # the worker expects the tail as the writer found it
        worker = IngestWorker(nc, writer, ingest_config(settings))
        with open_log(settings) as other:  # e.g. `fleet quarantine retry`, beside ingest
            other.append([Accepted(e.event_id, e.__struct_config__.tag, e.source,
                                   e.occurred_at.isoformat(), encode_event(e).decode())
                          for e in (*logged_by_hand, again)])
        try:
            return await worker.run(asyncio.Event(), until_idle_secs=0.3)
        finally:
            writer.close()
            await nc.drain()

    stats = asyncio.run(main())
    assert (stats.appended, stats.duplicates) == (2999, 1)
    with open_log(settings, readonly=True) as log:
        assert log.head == 3003
        assert [e.event_id for b in log.read(5) for e in b] == [
            e.event_id for e in events if e is not again]
        assert log.verify().ok


def test_duplicate_publishes_and_redeliveries_store_each_event_once(settings):
    """The same events published three times (with and without Nats-Msg-Id) are stored once."""
    bodies = [encode_event(make_issue(i, event_id=str(uuid.uuid4()))) for i in range(200)]
    ids = [json.loads(b)["event_id"] for b in bodies]

    async def main():
        first = await publish_raw(settings, bodies, msg_ids=ids)
        again = await publish_raw(settings, bodies, msg_ids=ids)  # JetStream dedup window
        await publish_raw(settings, bodies[:50])  # no msg id: only the log can tell
        stats1 = await ingest_until_idle(settings)
        await publish_raw(settings, bodies[150:])  # after the first commit
        stats2 = await ingest_until_idle(settings)
        return first, again, stats1, stats2

    first, again, stats1, stats2 = asyncio.run(main())
    assert first.published == 200 and again.duplicates == 200
    assert stats1.appended == 200 and stats1.duplicates == 50
    assert stats2.appended == 0 and stats2.duplicates == 50
    with open_log(settings, readonly=True) as log:
        assert log.stats()["count"] == 200


def test_poison_does_not_hold_up_the_messages_behind_it(settings):
    """Malformed, invalid, unknown, id-less and oversized input is quarantined; the rest flows."""
    good = [encode_event(make_issue(i, event_id=str(uuid.uuid4()))) for i in range(4)]
    no_id = json.loads(good[0])
    no_id.pop("event_id")
    unknown = {**json.loads(good[0]), "type": "issue.teleported", "event_id": "u-1"}
    bad_schema = {**json.loads(good[0]), "issue_id": "twelve", "event_id": "s-1"}
    big = {**json.loads(good[0]), "description": "x" * 300_000, "event_id": "big-1"}
    bodies = [good[0], b"{not json", good[1], json.dumps(no_id).encode(), b"\xff\xfe\x00",
              json.dumps(unknown).encode(), good[2], json.dumps(bad_schema).encode(),
              json.dumps(big).encode(), good[3]]
    settings = settings.with_overrides(max_event_bytes=200_000)

    async def main():
        await publish_raw(settings, bodies)
        return await ingest_until_idle(settings)

    stats = asyncio.run(main())
    assert stats.appended == 4 and stats.quarantined == 6
    with open_log(settings, readonly=True) as log:
        items = log.quarantine_list()
        assert [i["reason"] for i in items] == [
            "not_json", "no_event_id", "not_json", "unknown_type", "schema", "oversized"]
        first = log.quarantine_get(items[0]["id"])
        assert first["raw"] == b"{not json"
        assert json.loads(first["headers"])["X-Test"] == "1"
        assert first["subject"] == f"{settings.subject_prefix}.test.raw"
        assert first["stream_seq"] == 2


def test_out_of_order_events_are_logged_in_arrival_order(settings):
    """Log positions follow commit order, not occurred_at: the log never reorders."""
    events = [make_issue(i, event_id=f"ooo-{i}") for i in (5, 1, 4, 2, 3)]

    async def main():
        await publish_raw(settings, [encode_event(e) for e in events])
        return await ingest_until_idle(settings)

    asyncio.run(main())
    with open_log(settings, readonly=True) as log:
        assert [e.event_id for b in log.read() for e in b] == [e.event_id for e in events]


def test_quarantine_retry_re_drives_input_after_a_fix(settings):
    """An oversized event quarantined under a small limit is ingested after the limit is raised."""
    event = make_issue(1, event_id=str(uuid.uuid4()))
    body = encode_event(event)
    small = settings.with_overrides(max_event_bytes=100)

    asyncio.run(publish_raw(small, [body]))
    asyncio.run(ingest_until_idle(small))
    env = settings_env(settings, FLEET_MAX_EVENT_BYTES="100")
    listed = subprocess.run(fleet_cmd("quarantine", "list", "--json"), env=env, capture_output=True, check=True)
    (item,) = json.loads(listed.stdout)
    assert item["reason"] == "oversized"

    still = subprocess.run(fleet_cmd("quarantine", "retry", str(item["id"])), env=env, capture_output=True)
    assert still.returncode == 1 and b"still_invalid" in still.stdout

    env["FLEET_MAX_EVENT_BYTES"] = "100000"
    fixed = subprocess.run(fleet_cmd("quarantine", "retry", "--all", "--json"), env=env,
                           capture_output=True, check=True)
    assert json.loads(fixed.stdout)[0]["outcome"] == "republished"
    asyncio.run(ingest_until_idle(settings))
    with open_log(settings, readonly=True) as log:
        assert log.get(event.event_id).position == 1
        assert log.quarantine_count("open") == 0


def test_a_second_ingest_worker_for_the_same_log_stops_at_start_naming_the_first(settings):
    """Two workers on one durable would ack each other's uncommitted deliveries: `fleet ingest`
    run by hand beside the fleet's refuses to start (exit 3), naming the holder's pid."""
    import os

    from events.errors import LogBusy
    from workers.ingest.writer import BatchWriter, WriterProcess

    first = BatchWriter(open_log(settings), settings.ingest_durable)
    try:
        with pytest.raises(LogBusy, match=f"pid {os.getpid()}"):
            BatchWriter(open_log(settings), settings.ingest_durable)
        with pytest.raises(LogBusy, match="run one ingest worker per log"):
            WriterProcess(settings.log_path, sync=settings.log_sync, consumer=settings.ingest_durable)
        second = subprocess.run(fleet_cmd("ingest", "--until-idle", "1"), env=settings_env(settings),
                                capture_output=True, timeout=60)
        assert second.returncode == 3
        assert b"is being written by another process" in second.stderr
    finally:
        first.close()
    other = BatchWriter(open_log(settings), "another-durable")  # another consumer: its own lock
    other.close()
    log_writer(settings).close()  # released with the first


@pytest.mark.slow
def test_sigterm_finishes_the_batch_in_hand_and_exits_0(settings):
    """SIGTERM while running: everything received is committed and acked, exit code 0."""
    env = settings_env(settings)
    proc = subprocess.Popen(fleet_cmd("ingest", "--json"), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    events = [make_issue(i, event_id=str(uuid.uuid4())) for i in range(1000)]

    async def main():
        await publish_raw(settings, [encode_event(e) for e in events])

        def head():
            try:
                with open_log(settings, readonly=True) as log:
                    return log.head > 0
            except Exception:
                return False

        await wait_until(head, timeout_secs=20)

    asyncio.run(main())
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    summary = json.loads(out)
    with open_log(settings, readonly=True) as log:
        assert log.head == summary["head"]
    # whatever was not received before the signal is still in the stream for the next worker
    asyncio.run(ingest_until_idle(settings))
    with open_log(settings, readonly=True) as log:
        assert log.head == 1000 and log.verify().ok


def test_trace_context_travels_from_publish_into_the_log(settings, spans):
    """An event published with traceparent keeps it in the log, and ingest continues its trace."""
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    traceparent = f"00-{trace_id}-b7ad6b7169203331-01"
    event = make_issue(1, event_id=str(uuid.uuid4()))

    async def main():
        nc = await connect(settings.nats_url, name="test")
        await ensure_stream(nc.jetstream(), sdlc_stream(settings))
        publisher = Publisher(nc)
        await publisher.publish(f"{settings.subject_prefix}.simulate.issue.opened", encode_event(event),
                                msg_id=event.event_id, headers={"traceparent": traceparent})
        await publisher.flush()
        await nc.drain()
        await ingest_until_idle(settings)

    asyncio.run(main())
    with open_log(settings, readonly=True) as log:
        assert log.get(event.event_id).traceparent == traceparent
        assert log.traceparents(1, 10) == {1: traceparent}
    ingest_spans = [s for s in spans.get_finished_spans() if s.name == "sdlc.ingest"]
    assert any(format(s.context.trace_id, "032x") == trace_id for s in ingest_spans)


def test_a_validation_bug_quarantines_the_message_and_keeps_the_connection(settings, monkeypatch):
    """An unexpected error while validating is kept as `internal` input; the stream moves on."""
    import workers.ingest.consumer as ingest

    bodies = [encode_event(make_issue(i, event_id=str(uuid.uuid4()))) for i in range(3)]
    real_decode = ingest.decode_event

    def flaky_decode(data, **kwargs):
        if data == bodies[1]:
            raise RuntimeError("boom")
        return real_decode(data, **kwargs)

    monkeypatch.setattr(ingest, "decode_event", flaky_decode)

    async def main():
        await publish_raw(settings, bodies)
        return await ingest_until_idle(settings)

    stats = asyncio.run(main())
    assert (stats.appended, stats.quarantined) == (2, 1)
    with open_log(settings, readonly=True) as log:
        (item,) = log.quarantine_list()
        assert item["reason"] == "internal" and "boom" in item["detail"]
        assert log.quarantine_get(item["id"])["raw"] == bodies[1]


def test_a_stray_message_on_the_pull_inbox_is_ignored_and_ingest_goes_on(settings):
    """Core NATS traffic on the worker's inbox (no JetStream reply) neither kills nor stalls it."""
    bodies = [encode_event(make_issue(i, event_id=str(uuid.uuid4()))) for i in range(3)]

    async def main():
        await publish_raw(settings, bodies)
        nc = await connect(settings.nats_url, name="test-ingest")
        writer = log_writer(settings)
        worker = IngestWorker(nc, writer, ingest_config(settings))
        run = asyncio.create_task(worker.run(asyncio.Event(), until_idle_secs=0.5))
        await wait_until(lambda: worker._ready, timeout_secs=10)
        stray = await connect(settings.nats_url, name="stray")
        await stray.publish(worker._inbox, b"not for you", reply="somewhere.else")
        await stray.publish(worker._inbox, b"")
        await stray.drain()
        try:
            return await run
        finally:
            writer.close()
            await nc.drain()

    stats = asyncio.run(main())
    assert (stats.appended, stats.quarantined) == (3, 0)


def test_an_expired_pull_request_is_renewed_at_once_not_at_the_next_idle_poll(settings, monkeypatch):
    """A quiet stream lets a pull request expire; the next event must not wait for a poll.

    Before the fix the server's expiry notice did not wake the loop: every
    expiry (2 s) stalled delivery until the idle poll, 100 ms at 2,000
    events/s. Here the poll is a minute away, so only the wake-up can help.
    """
    import dataclasses

    import workers.ingest.consumer as ingest_module

    monkeypatch.setattr(ingest_module, "_IDLE_POLL_SECS", 60)
    config = dataclasses.replace(ingest_config(settings), pull_expires_secs=0.3)
    events = [make_issue(i, event_id=str(uuid.uuid4())) for i in range(4)]

    async def main():
        nc = await connect(settings.nats_url, name="test-ingest")
        await ensure_stream(nc.jetstream(), sdlc_stream(settings))
        writer = log_writer(settings)
        worker = IngestWorker(nc, writer, config)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        try:
            for n, event in enumerate(events, 1):
                if n > 1:
                    await asyncio.sleep(0.8)  # the open request expires meanwhile
                await publish_raw(settings, [encode_event(event)])
                await wait_until(lambda: worker.stats.appended == n, timeout_secs=15)
        finally:
            stop.set()
            worker._wake.set()
            await task
            writer.close()
            await nc.drain()

    asyncio.run(main())
    with open_log(settings, readonly=True) as log:
        assert [e.event_id for b in log.read() for e in b] == [e.event_id for e in events]


def test_deliveries_a_dead_worker_never_committed_are_delivered_again(settings):
    """A worker killed with deliveries received but not committed: the next worker must not
    ack them with its first ``AckPolicy.ALL`` ack; it rewinds the consumer to the checkpoint.

    Before the fix the next worker acked them along with later messages: 100 of
    300 events were lost for good.
    """
    events = [make_issue(i, event_id=str(uuid.uuid4())) for i in range(300)]
    asyncio.run(publish_raw(settings, [encode_event(e) for e in events]))
    config = ingest_config(settings)

    async def main():
        nc = await connect(settings.nats_url, name="dead")
        writer = log_writer(settings)
        await IngestWorker(nc, writer, config).setup()
        writer.close()
        received = await _pull(nc, config, 100)
        await nc.close()  # died before its commit
        assert len(received) == 100
        stats = await ingest_until_idle(settings, idle=0.5)
        return stats

    stats = asyncio.run(main())
    assert stats.rewinds == 1 and stats.appended == 300
    with open_log(settings, readonly=True) as log:
        assert [e.event_id for b in log.read() for e in b] == [e.event_id for e in events]
        assert log.verify().ok


def test_deliveries_lost_in_flight_mid_run_are_delivered_again_in_order(settings):
    """Another client takes some deliveries of the durable and vanishes (as a disconnect or a
    slow-consumer cut loses what was on the wire): the worker sees the consumer sequence
    jump, commits what came before, rewinds, and the log still holds every event in order."""
    events = [make_issue(i, event_id=str(uuid.uuid4())) for i in range(300)]

    async def steal(js, config, publish_rest):
        thief = await connect(settings.nats_url, name="thief")
        stolen = asyncio.create_task(_pull(thief, config, 50))
        await asyncio.sleep(0.2)  # its request is waiting at the server
        await publish_rest()
        assert len(await stolen) == 50
        await thief.close()

    stats = asyncio.run(_ingest_around(settings, events, 100, steal))
    assert stats.rewinds == 1
    with open_log(settings, readonly=True) as log:
        assert [e.event_id for b in log.read() for e in b] == [e.event_id for e in events]


async def _ingest_around(settings, events: list, first: int, disturb) -> IngestStats:
    """Run a worker; once it has appended the ``first`` events, ``await disturb(js, config,
    publish_rest)`` (which publishes the others); return its stats once it has them all."""
    config = ingest_config(settings)
    producer = await connect(settings.nats_url, name="producer")
    await ensure_stream(producer.jetstream(), sdlc_stream(settings))
    await publish_events(producer, events[:first], prefix=settings.subject_prefix)
    nc = await connect(settings.nats_url, name="test-ingest")
    writer = log_writer(settings)
    worker = IngestWorker(nc, writer, config)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        await wait_until(lambda: worker.stats.appended == first, timeout_secs=20)
        await disturb(producer.jetstream(), config, lambda: publish_events(
            producer, events[first:], prefix=settings.subject_prefix))
        await wait_until(lambda: worker.stats.appended == len(events), timeout_secs=15)
    finally:
        stop.set()
        worker._wake.set()
        stats = await task
        writer.close()
        await nc.drain()
        await producer.drain()
    return stats


async def _pull(nc, config: IngestConfig, n: int) -> list:
    """Take ``n`` deliveries of the ingest durable with a plain pull request (never acked)."""
    got: list = []
    done = asyncio.Event()

    async def on_msg(msg):
        got.append(msg)
        if len(got) == n:
            done.set()

    inbox = nc.new_inbox()
    await nc.subscribe(inbox, cb=on_msg)
    await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.{config.stream.name}.{config.durable}",
                     json.dumps({"batch": n, "expires": 10_000_000_000}).encode(), reply=inbox)
    await asyncio.wait_for(done.wait(), 10)
    return got


def test_a_re_created_stream_is_refused_with_the_fix_not_skipped(settings):
    """A stream that ends below the log's checkpoint (deleted and re-created) would have its
    messages skipped as redeliveries: ingest refuses it, naming the way to ingest it."""
    from dataclasses import replace

    from events.errors import StreamBehindLog

    first = [make_issue(i, event_id=str(uuid.uuid4())) for i in range(5)]
    second = [make_issue(i, event_id=str(uuid.uuid4())) for i in range(5, 7)]

    async def main():
        await publish_raw(settings, [encode_event(e) for e in first])
        await ingest_until_idle(settings)
        nc = await connect(settings.nats_url, name="operator")
        await nc.jetstream().delete_stream(settings.stream)
        await nc.drain()
        await publish_raw(settings, [encode_event(e) for e in second + first[:1]])
        with pytest.raises(StreamBehindLog, match="FLEET_INGEST_DURABLE to a new name"):
            await ingest_until_idle(settings)
        return await ingest_until_idle(replace(settings, ingest_durable="ingest-2"))

    stats = asyncio.run(main())
    assert (stats.appended, stats.duplicates) == (2, 1)
    with open_log(settings, readonly=True) as log:
        assert [e.event_id for b in log.read() for e in b] == [e.event_id for e in first + second]


def test_a_consumer_deleted_under_a_running_worker_is_re_created_at_the_checkpoint(settings):
    """An operator deletes the durable while ingest runs: ingest notices (the server's
    "409 Consumer Deleted", or "503" for requests to it) and rewinds instead of stalling."""
    events = [make_issue(i, event_id=str(uuid.uuid4())) for i in range(20)]

    async def delete_the_consumer(js, config, publish_rest):
        await js.delete_consumer(config.stream.name, config.durable)
        await publish_rest()

    stats = asyncio.run(_ingest_around(settings, events, 10, delete_the_consumer))
    assert stats.rewinds == 1
    with open_log(settings, readonly=True) as log:
        assert [e.event_id for b in log.read() for e in b] == [e.event_id for e in events]


def test_messages_the_stream_dropped_before_ingest_read_them_are_counted_and_named(settings):
    """A stream with a size limit drops its oldest messages; one deleted by an operator goes
    too. Ingest logs what it finds and counts the gaps in the stream sequence: no silent loss."""
    from dataclasses import replace

    small = replace(settings, stream_max_bytes=8_000)
    events = [make_issue(i, event_id=str(uuid.uuid4())) for i in range(60)]

    async def main():
        await publish_raw(small, [encode_event(e) for e in events])
        nc = await connect(small.nats_url, name="operator")
        js = nc.jetstream()
        info = await js.stream_info(small.stream)
        first = info.state.first_seq
        await js.delete_msg(small.stream, first + 5)
        await nc.drain()
        return first, await ingest_until_idle(small)

    first, stats = asyncio.run(main())
    assert first > 1  # the limit dropped the oldest
    assert stats.gone == (first - 1) + 1  # dropped by the limit, and the deleted one
    assert stats.appended == 60 - stats.gone
    with open_log(settings, readonly=True) as log:
        kept = [e for i, e in enumerate(events, 1) if i >= first and i != first + 5]
        assert [e.event_id for b in log.read() for e in b] == [e.event_id for e in kept]


def test_a_stream_deleted_under_a_running_worker_stops_it_with_the_fix(settings):
    """Deleting the stream under ingest used to leave it retrying forever; now it stops with
    the same advice as for a re-created stream, and what it had is committed."""
    from events.errors import StreamBehindLog

    async def main():
        await publish_raw(settings, [encode_event(make_issue(i)) for i in range(10)])
        nc = await connect(settings.nats_url, name="test-ingest")
        writer = log_writer(settings)
        worker = IngestWorker(nc, writer, ingest_config(settings))
        task = asyncio.create_task(worker.run(asyncio.Event()))
        try:
            await wait_until(lambda: worker.stats.appended == 10, timeout_secs=20)
            await nc.jetstream().delete_stream(settings.stream)
            with pytest.raises(StreamBehindLog, match="deleted while ingest ran"):
                await asyncio.wait_for(task, 15)
        finally:
            writer.close()
            await nc.drain()

    asyncio.run(main())
    with open_log(settings, readonly=True) as log:
        assert log.head == 10
