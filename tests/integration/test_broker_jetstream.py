"""JetStream broker behaviour beyond the conformance suite: streams, dedup, prefetch, dead letters, errors."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time

import dramatiq
import nats
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.message import Message
from nats.js.api import AckPolicy, RetentionPolicy

from events.errors import ConfigError, TransientError
from ops.embedded import free_port
from tests.support.wait import wait_until
from workers.broker import broker_from_url
from workers.broker.jetstream import JetStreamBroker

QUEUE = "q"


def nats_call(url: str, fn):
    """Run ``fn(js)`` on a fresh NATS connection (to inspect what the broker stored)."""
    async def main():
        nc = await nats.connect(url)
        try:
            return await fn(nc.jetstream())
        finally:
            await nc.close()
    return asyncio.run(main())


def test_declaring_a_queue_creates_work_queue_stream_and_durable_consumers(make_broker, nats_server, names):
    """One work-queue stream with per-message TTL; explicit-ack durables for the queue and its DQ."""
    broker = make_broker()
    broker.declare_queue(QUEUE)
    assert broker.get_declared_queues() == {QUEUE}
    assert broker.get_declared_delay_queues() == {"q.DQ"}

    async def inspect(js):
        stream = await js.stream_info(names["stream"])
        consumers = [await js.consumer_info(names["stream"], d) for d in ("q", "q_DQ")]
        return stream.config, [c.config for c in consumers]

    stream, consumers = nats_call(nats_server.url, inspect)
    assert stream.retention == RetentionPolicy.WORK_QUEUE
    assert stream.subjects == [f"{names['subject_prefix']}.>"]
    assert stream.allow_msg_ttl
    assert [c.filter_subject for c in consumers] == [f"{names['subject_prefix']}.q",
                                                     f"{names['subject_prefix']}.q.DQ"]
    assert all(c.ack_policy == AckPolicy.EXPLICIT for c in consumers)


def test_a_stream_with_another_retention_is_refused(nats_server, names):
    """An existing stream of the same name but limits retention is a ConfigError naming it."""
    from nats.js.api import StreamConfig

    nats_call(nats_server.url, lambda js: js.add_stream(StreamConfig(
        name=names["stream"], subjects=[f"{names['subject_prefix']}.>"], retention=RetentionPolicy.LIMITS)))
    before = set(threading.enumerate())
    with pytest.raises(ConfigError, match=f"{names['stream']} exists with retention limits"):
        JetStreamBroker(nats_server.url, **names)
    assert set(threading.enumerate()) - before == set()


def test_a_republished_message_is_stored_once_but_a_retry_is_not_a_duplicate(make_broker):
    """Publishing the same enqueue twice keeps one copy; a retry of the same message is new."""
    broker = make_broker()
    broker.declare_queue(QUEUE)
    message = Message(queue_name=QUEUE, actor_name="a", args=(1,), kwargs={}, options={})
    broker.enqueue(message)
    broker.enqueue(message)
    assert broker.backlog(QUEUE) == 1
    broker.enqueue(message.copy(options={"retries": 1}))
    assert broker.backlog(QUEUE) == 2


def test_a_consumer_holds_at_most_prefetch_unacked_messages(make_broker):
    """consume(prefetch=3) hands out three messages, one more per ack; requeued ones come back, marked redelivered."""
    broker = make_broker()
    broker.declare_queue(QUEUE)
    for n in range(10):
        broker.enqueue(Message(queue_name=QUEUE, actor_name="a", args=(n,), kwargs={}, options={}))
    consumer = broker.consume(QUEUE, prefetch=3, timeout=200)

    def drain():
        got = []
        while (message := next(consumer)) is not None:
            got.append(message)
        return got

    first = drain()
    assert [m.args[0] for m in first] == [0, 1, 2]
    consumer.ack(first[0])
    second = drain()
    assert [m.args[0] for m in second] == [3]
    consumer.requeue(first[1:] + second)
    rest = []

    def acked_the_rest() -> bool:
        for message in drain():
            rest.append(message)
            consumer.ack(message)
        return len(rest) >= 9

    asyncio.run(wait_until(acked_the_rest, timeout_secs=10, interval_secs=0))
    consumer.close()
    assert sorted(m.args[0] for m in rest) == list(range(1, 10))
    assert sorted(m.args[0] for m in rest if m.redelivered) == [1, 2, 3]
    asyncio.run(wait_until(lambda: broker.backlog(QUEUE) == 0, timeout_secs=15, interval_secs=0.02))


def test_workers_on_two_connections_share_a_queue(make_broker, run_worker):
    """Two brokers (two processes' worth) on one queue: each message runs exactly once, both work."""
    seen: dict[str, list[int]] = {"a": [], "b": []}

    def declare(broker, name):
        @dramatiq.actor(broker=broker, queue_name=QUEUE, actor_name="record")
        def record(n):
            seen[name].append(n)
            time.sleep(0.002)
        return record

    first, second = make_broker(), make_broker()
    record = declare(first, "a")
    declare(second, "b")
    run_worker(first)
    run_worker(second)
    for n in range(100):
        record.send(n)
    first.join(QUEUE, timeout=10_000)
    assert sorted(seen["a"] + seen["b"]) == list(range(100))
    assert seen["a"] and seen["b"]


def test_flush_empties_the_delay_queue_too(make_broker, run_worker):
    """flush() drops delayed messages as well as ready ones."""
    broker = make_broker()
    seen = []

    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def record(n):
        seen.append(n)

    record.send(1)
    record.send_with_options(args=(2,), delay=100)
    assert broker.backlog(QUEUE) == 1 and broker.backlog("q.DQ") == 1
    broker.flush(QUEUE)
    assert broker.backlog(QUEUE) == 0 and broker.backlog("q.DQ") == 0
    run_worker(broker)
    record.send(3)
    broker.join(QUEUE, timeout=10_000)
    assert seen == [3]


def test_dead_letters_keep_the_reason_and_expire(make_broker, run_worker, nats_server, names):
    """A rejected message lands on the XQ with the exception and a Nats-TTL; undecodable bytes too."""
    broker = make_broker(dead_message_ttl_ms=3_600_000)

    @dramatiq.actor(broker=broker, queue_name=QUEUE, max_retries=0)
    def doomed():
        raise RuntimeError("boom")

    doomed.send()
    nats_call(nats_server.url, lambda js: js.publish(f"{names['subject_prefix']}.q", b"\xffnot json"))
    run_worker(broker)
    broker.join(QUEUE, timeout=10_000)

    async def read_xq(js):
        subject = f"{names['subject_prefix']}.q.XQ"
        first = await js.get_msg(names["stream"], seq=1, subject=subject, next=True)
        second = await js.get_msg(names["stream"], seq=first.seq + 1, subject=subject, next=True)
        return [first, second]

    stored = nats_call(nats_server.url, read_xq)
    reasons = sorted(m.headers["Dramatiq-Reason"] for m in stored)
    assert "RuntimeError('boom')" in reasons[0]
    assert reasons[1].startswith("undecodable")
    assert all(m.headers["Nats-TTL"] == "3600" for m in stored)
    assert [m.actor_name for m in broker.dead_letters(QUEUE)] == ["doomed"]


def test_a_message_that_never_settles_is_dead_lettered_after_max_deliveries(make_broker, nats_server,
                                                                             names):
    """A message whose worker dies every time stops coming back after the cap; it is kept on the XQ."""
    broker = make_broker(max_deliveries=2)

    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def crashes_its_worker():
        pass

    crashes_its_worker.send()
    consumer = broker.consume(QUEUE, prefetch=1, timeout=2000)
    for _ in range(2):  # delivered, then lost (as if the worker died): redelivered at once
        message = next(consumer)
        assert message is not None and message.actor_name == "crashes_its_worker"
        consumer.requeue([message])
    assert next(consumer) is None
    consumer.close()
    (dead,) = broker.dead_letters(QUEUE)
    assert dead.actor_name == "crashes_its_worker"

    async def reason(js):
        msg = await js.get_msg(names["stream"], seq=1, subject=f"{names['subject_prefix']}.q.XQ", next=True)
        return msg.headers["Dramatiq-Reason"]

    assert nats_call(nats_server.url, reason).startswith("delivered 2 times without being settled")


def test_a_long_running_actor_is_not_redelivered_past_ack_wait(make_broker, run_worker):
    """Heartbeats keep a message that runs longer than ack_wait with its worker: it runs once."""
    broker = make_broker(ack_wait_secs=1)
    runs = []

    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def long(n):
        runs.append(n)
        time.sleep(2.5)

    long.send(1)
    run_worker(broker)
    broker.join(QUEUE, timeout=20_000)
    assert runs == [1]


def test_unreachable_nats_is_a_transient_error_naming_the_url():
    """No server at the URL: TransientError naming it, quickly, and no thread left behind."""
    url = f"nats://127.0.0.1:{free_port()}"
    before = set(threading.enumerate())
    started = time.monotonic()
    with pytest.raises(TransientError, match=url):
        JetStreamBroker(url, connect_timeout_secs=1)
    assert time.monotonic() - started < 5
    assert set(threading.enumerate()) - before == set()


def test_close_stops_the_loop_thread_and_is_idempotent(make_broker):
    """close() leaves no broker thread running and can be called twice."""
    before = set(threading.enumerate())
    broker = make_broker()
    broker.declare_queue(QUEUE)
    broker.consume(QUEUE, prefetch=4, timeout=100)
    broker.close()
    broker.close()
    assert not broker.connected
    assert {t for t in threading.enumerate() if t.name.startswith("dramatiq-jetstream")} - before == set()


@pytest.mark.slow
def test_a_deleted_consumer_is_recreated_and_work_resumes(make_broker, run_worker, nats_server, names):
    """Delete a queue's durable consumer under a running worker: it is re-declared and messages run."""
    broker = make_broker()
    seen = []

    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def record(n):
        seen.append(n)

    run_worker(broker)
    record.send(1)
    asyncio.run(wait_until(lambda: seen == [1], timeout_secs=15, interval_secs=0.02))
    nats_call(nats_server.url, lambda js: js.delete_consumer(names["stream"], "q"))
    record.send(2)
    asyncio.run(wait_until(lambda: sorted(seen) == [1, 2], timeout_secs=20, interval_secs=0.02))
    broker.join(QUEUE, timeout=10_000)


def test_broker_from_url_picks_the_broker_by_scheme(nats_server, names):
    """nats:// -> JetStreamBroker, stub:// -> StubBroker; unknown schemes and missing clients are ConfigErrors."""
    broker = broker_from_url(nats_server.url, **names)
    try:
        assert isinstance(broker, JetStreamBroker)
    finally:
        broker.close()
    assert isinstance(broker_from_url("stub://"), StubBroker)
    with pytest.raises(ConfigError, match="kafka://"):
        broker_from_url("kafka://host:9092")
    if importlib.util.find_spec("redis") is None:
        with pytest.raises(ConfigError, match=r"redis://:\*\*\*@h:6379/0.*pip install"):
            broker_from_url("redis://:secret@h:6379/0")
    else:
        assert type(broker_from_url("redis://:secret@h:6379/0")).__name__ == "RedisBroker"
