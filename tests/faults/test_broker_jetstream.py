"""The JetStream broker under faults: a worker killed mid-message, a nats-server restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time

import dramatiq
import pytest
from dramatiq import Worker

from ops.embedded import NatsServer, free_port
from tests.support.paths import ROOT
from tests.support.wait import wait_until
from workers.broker.jetstream import JetStreamBroker

QUEUE = "q"


_CRASHING_WORKER = textwrap.dedent("""
    import pathlib, sys, time
    import dramatiq
    from workers.broker.jetstream import JetStreamBroker

    url, stream, prefix, marker = sys.argv[1:5]
    broker = JetStreamBroker(url, stream=stream, subject_prefix=prefix, ack_wait_secs=2)

    @dramatiq.actor(broker=broker, queue_name="q", actor_name="work")
    def work(n):
        pathlib.Path(marker).write_text(str(n))
        time.sleep(600)

    dramatiq.Worker(broker, worker_timeout=100, worker_threads=1).start()
    time.sleep(600)
""")


@pytest.mark.slow
def test_a_message_held_by_a_killed_worker_is_redelivered_once(make_broker, run_worker, nats_server, names,
                                                                 tmp_path):
    """kill -9 a worker mid-message: after ack_wait a fresh worker runs it exactly once more."""
    broker = make_broker(ack_wait_secs=2)
    done = []

    @dramatiq.actor(broker=broker, queue_name=QUEUE, actor_name="work")
    def work(n):
        done.append(n)

    work.send(7)
    marker = tmp_path / "started"
    child = subprocess.Popen(
        [sys.executable, "-c", _CRASHING_WORKER, nats_server.url, names["stream"], names["subject_prefix"],
         str(marker)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        # Written, not only created: write_text creates the file before it writes "7".
        asyncio.run(wait_until(lambda: marker.exists() and marker.read_text(), timeout_secs=20,
                               interval_secs=0.02))
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert marker.read_text() == "7"
    assert broker.backlog(QUEUE) == 1

    killed_at = time.monotonic()
    run_worker(broker)
    broker.join(QUEUE, timeout=20_000)
    assert done == [7]
    assert time.monotonic() - killed_at < 15
    assert broker.backlog(QUEUE) == 0


@pytest.mark.slow
def test_work_continues_across_a_nats_restart(tmp_path, names):
    """Stop and restart nats-server under a running worker: every message still runs once."""
    port = free_port()
    server = NatsServer(tmp_path / "nats", port=port).start()
    broker = JetStreamBroker(server.url, **names, ack_wait_secs=2, op_timeout_secs=5)
    worker = Worker(broker, worker_timeout=100, worker_threads=2)
    try:
        seen = []

        @dramatiq.actor(broker=broker, queue_name=QUEUE)
        def record(n):
            seen.append(n)

        for n in range(10):
            record.send(n)
        worker.start()
        asyncio.run(wait_until(lambda: len(seen) == 10, timeout_secs=15, interval_secs=0.02))

        server.stop()
        server = NatsServer(tmp_path / "nats", port=port).start()
        asyncio.run(wait_until(lambda: broker.connected, timeout_secs=20, interval_secs=0.02))
        for n in range(10, 20):
            record.send(n)
        broker.join(QUEUE, timeout=30_000)
        assert sorted(seen) == list(range(20))
    finally:
        worker.stop(timeout=10_000)
        broker.close()
        server.stop()
