"""Broker conformance: the same dramatiq behaviours against every broker of the fleet.

Each test runs against dramatiq's in-memory StubBroker and the JetStream
broker on a real nats-server (own stream and subject prefix per test).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid

import dramatiq
import pytest
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from dramatiq.errors import QueueJoinTimeout, QueueNotFound
from dramatiq.middleware import Retries, default_middleware

from tests.support.wait import wait_until
from workers.broker.jetstream import JetStreamBroker

MIN_BACKOFF_MS = 100
MAX_BACKOFF_MS = 1000
JOIN_TIMEOUT_MS = 15_000
QUEUE = "q"


@pytest.fixture(params=["stub", "jetstream"])
def broker(request):
    """A fresh broker of each kind, with fast retries."""
    middleware = [m() for m in default_middleware if m is not Retries]
    middleware.append(Retries(min_backoff=MIN_BACKOFF_MS, max_backoff=MAX_BACKOFF_MS, max_retries=3))
    if request.param == "stub":
        b = StubBroker(middleware=middleware)
    else:
        server = request.getfixturevalue("nats_server")
        tag = uuid.uuid4().hex[:8]
        b = JetStreamBroker(server.url, stream=f"DRAMATIQ_{tag}", subject_prefix=f"dq{tag}",
                            middleware=middleware, ack_wait_secs=5)
    yield b
    b.close()


@pytest.fixture
def workers(broker):
    """Start dramatiq workers on the broker; every one still running is stopped after the test."""
    running: list[Worker] = []

    class Workers:
        def start(self, *, threads: int = 2, prefetch: int | None = None) -> Worker:
            worker = Worker(broker, worker_timeout=100, worker_threads=threads)
            if prefetch is not None:
                worker.queue_prefetch = prefetch
            worker.start()
            running.append(worker)
            return worker

        def stop(self, worker: Worker) -> None:
            running.remove(worker)
            worker.stop(timeout=10_000)

    yield Workers()
    for worker in running:
        worker.stop(timeout=10_000)


def join(broker, queue_name: str = QUEUE, *, timeout_ms: int = JOIN_TIMEOUT_MS) -> None:
    """Wait until the queue is drained (dead letters do not fail the join)."""
    if isinstance(broker, StubBroker):
        broker.join(queue_name, timeout=timeout_ms, fail_fast=False)
    else:
        broker.join(queue_name, timeout=timeout_ms)


def dead_letter_ids(broker, queue_name: str = QUEUE) -> list[tuple[str, int]]:
    """(message id, retries) of every dead-lettered message of the queue."""
    if isinstance(broker, StubBroker):
        messages = broker.dead_letters_by_queue[queue_name]
    else:
        messages = broker.dead_letters(queue_name)
    return [(m.message_id, m.options.get("retries", 0)) for m in messages]


def test_enqueued_messages_run_their_actor(broker, workers):
    """Every sent message runs its actor once with its arguments."""
    seen = []

    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def record(n):
        seen.append(n)

    for n in range(20):
        record.send(n)
    workers.start()
    join(broker)
    assert sorted(seen) == list(range(20))


def test_acked_message_is_never_delivered_again(broker, workers):
    """After an ack, neither the same worker nor a fresh one sees the message again."""
    seen = []

    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def record(n):
        seen.append(n)

    for n in range(5):
        record.send(n)
    first = workers.start()
    join(broker)
    workers.stop(first)
    workers.start()
    record.send("sentinel")
    join(broker)
    assert sorted(seen, key=str) == [0, 1, 2, 3, 4, "sentinel"]


def test_failing_message_is_retried_with_backoff_until_it_succeeds(broker, workers):
    """A message that fails twice runs a third time, each retry after at least the minimum backoff."""
    attempts = []

    @dramatiq.actor(broker=broker, queue_name=QUEUE, max_retries=5)
    def flaky():
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise ValueError("not yet")

    flaky.send()
    workers.start()
    join(broker)
    assert len(attempts) == 3
    gaps = [b - a for a, b in zip(attempts, attempts[1:])]
    assert all(gap >= MIN_BACKOFF_MS / 1000 * 0.9 for gap in gaps), gaps
    assert dead_letter_ids(broker) == []


def test_delayed_message_runs_after_its_delay(broker, workers):
    """``send_with_options(delay=...)`` holds the message on the delay queue until its eta."""
    ran = []

    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def later():
        ran.append(time.monotonic())

    workers.start()
    sent = time.monotonic()
    later.send_with_options(delay=500)
    join(broker)
    assert len(ran) == 1
    assert 0.5 <= ran[0] - sent < 5


def test_message_is_dead_lettered_after_max_retries(broker, workers):
    """A message failing more than max_retries times ends on the queue's XQ."""
    attempts = []

    @dramatiq.actor(broker=broker, queue_name=QUEUE, max_retries=2)
    def doomed():
        attempts.append(1)
        raise RuntimeError("always")

    message = doomed.send()
    workers.start()
    join(broker)
    assert len(attempts) == 3
    assert dead_letter_ids(broker) == [(message.message_id, 3)]


@pytest.mark.parametrize("broker", [
    pytest.param("stub", marks=pytest.mark.xfail(
        strict=True, raises=QueueJoinTimeout,
        reason="dramatiq's StubBroker consumer has no requeue: prefetched messages are lost on shutdown")),
    "jetstream",
], indirect=True)
def test_prefetched_messages_are_requeued_on_worker_shutdown(broker, workers):
    """Messages a stopping worker fetched but never ran are processed by the next worker."""
    seen, started, release = [], threading.Event(), threading.Event()

    @dramatiq.actor(broker=broker, queue_name=QUEUE, max_retries=0)
    def slow(n):
        seen.append(n)
        if n == 0:
            started.set()
            release.wait(10)

    slow.send(0)
    first = workers.start(threads=1, prefetch=2)
    assert started.wait(10)
    for n in range(1, 4):
        slow.send(n)
    asyncio.run(wait_until(lambda: first.work_queue.qsize() >= 1, timeout_secs=10, interval_secs=0.01))

    stopper = threading.Thread(target=workers.stop, args=(first,))
    stopper.start()
    asyncio.run(wait_until(lambda: not any(t.running for t in first.workers), timeout_secs=10,
                           interval_secs=0.01))
    release.set()
    stopper.join(15)
    assert not stopper.is_alive()
    assert seen == [0]

    workers.start(threads=1)
    join(broker, timeout_ms=2000)
    assert sorted(seen) == [0, 1, 2, 3]


def test_join_waits_for_delay_queue_and_times_out_without_workers(broker, workers):
    """join covers the queue and its delay queue, and raises QueueJoinTimeout when nobody works."""
    seen = []

    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def record(n):
        seen.append(n)

    record.send(1)
    record.send_with_options(args=(2,), delay=300)
    with pytest.raises(QueueJoinTimeout):
        join(broker, timeout_ms=300)
    workers.start()
    join(broker)
    assert sorted(seen) == [1, 2]


def test_flush_drops_waiting_messages(broker, workers):
    """flush() empties a queue before any worker runs its messages."""
    seen = []

    @dramatiq.actor(broker=broker, queue_name=QUEUE)
    def record(n):
        seen.append(n)

    for n in range(3):
        record.send(n)
    broker.flush(QUEUE)
    workers.start()
    record.send("after")
    join(broker)
    assert seen == ["after"]


def test_consuming_an_undeclared_queue_raises_queue_not_found(broker):
    """consume() of a queue nobody declared is a QueueNotFound error."""
    with pytest.raises(QueueNotFound):
        broker.consume("nobody-declared-this")
