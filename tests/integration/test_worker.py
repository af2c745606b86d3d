"""The worker process: the graph kept current and its changes published, woken without the broker."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time

import pytest

from ops.embedded import free_port
from ops.wiring import change_publisher
from projections.changes.outbox import OutboxReader
from projections.model.ontology import VERSION as V
from projections.versions.catalog import Versions
from tests.support.changes import append_events, graph_settings, start_projection, workload
from tests.support.cli import fleet_cmd, settings_env
from tests.support.wait import wait_until
from workers.natsio.client import LOG_APPENDED_SUBJECT, connect
from workers.projector.runtime import RuntimeConfig, WorkerRuntime

pytestmark = pytest.mark.slow


def _json(settings, *args, env=None):
    result = subprocess.run(fleet_cmd(*args, "--json"), env=env or settings_env(settings),
                            capture_output=True, timeout=60)
    return result.returncode, json.loads(result.stdout) if result.stdout.strip() else None


def test_worker_builds_applies_and_publishes_from_a_live_stream(settings):
    """First start rebuilds via the rebuild actor; new events are applied and published as changes."""
    env = settings_env(settings, FLEET_HEARTBEAT_INTERVAL_SECS="1", FLEET_EXPECTED_PROCESSES="ingest,worker",
                       FLEET_API_PORT=str(free_port()), FLEET_GRAPH_STREAM=f"GRAPH_{settings.stream}")
    subprocess.run(fleet_cmd("simulate", "--events", "1500", "--seed", "3"), env=env, check=True,
                   capture_output=True, timeout=60)
    ingest = subprocess.Popen(fleet_cmd("ingest"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen(fleet_cmd("worker"), env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        def at_head(n):
            code, listing = _json(settings, "projections", env=env)
            versions = listing["versions"] if listing else []
            return any(v["state"] == "active" and v["position"] == n for v in versions)

        def worker_stderr() -> str:
            worker.kill()
            return worker.communicate()[1].decode()[:6000]

        deadline = time.monotonic() + 60
        asyncio.run(wait_until(lambda: at_head(1500), timeout_secs=60, interval_secs=0.5,
                               message=worker_stderr))
        subprocess.run(fleet_cmd("simulate", "--events", "2000", "--seed", "3"), env=env, check=True,
                       capture_output=True, timeout=60)  # the first 1500 are duplicates
        asyncio.run(wait_until(lambda: at_head(2000), timeout_secs=deadline - time.monotonic(),
                               interval_secs=0.5, message="live events were not applied"))

        def health_states() -> tuple[int, dict[str, str]]:
            code, report = _json(settings, "health", env=env)
            return code, {c["name"]: c["state"] for c in report["components"]}

        def states_once_healthy() -> dict[str, str] | None:
            # A heartbeat from before the promotion may still say `rebuilding` (healthy too).
            code, states = health_states()
            return states if code == 0 and states.get("worker") == "ok" else None

        states = asyncio.run(wait_until(states_once_healthy, timeout_secs=30, interval_secs=0.5,
                                        message=lambda: health_states()[1]))
        assert states["worker"] == "ok" and states[f"projection graph v{V}"] == "ok"

        async def graph_messages():
            nc = await connect(settings.nats_url, name="test")
            try:
                info = await nc.jetstream().stream_info(f"GRAPH_{settings.stream}")
                return info.state.messages
            finally:
                await nc.close()

        async def changes_published() -> bool:
            return await graph_messages() >= 100

        asyncio.run(wait_until(changes_published, timeout_secs=30, interval_secs=0.5,
                               message="no graph-change events published"))
    finally:
        for proc in (worker, ingest):
            proc.send_signal(signal.SIGTERM)
        for proc in (worker, ingest):
            proc.wait(30)
    assert worker.returncode == 0, worker.stderr.read().decode()[-3000:]


def _runtime(s, *, poll_secs: float) -> WorkerRuntime:
    """A worker runtime (no dramatiq) whose projector and publisher poll every ``poll_secs``."""
    config = RuntimeConfig(log_path=s.log_path, projections_dir=s.projections_dir, nats_url=s.nats_url,
                           poll_interval_secs=poll_secs, heartbeat_interval_secs=60)
    return WorkerRuntime(config, publisher_factory=lambda nc: change_publisher(
        nc, s, poll_ms=round(poll_secs * 1000)))


def _published_up_to_the_head(runtime: WorkerRuntime, head: int, *, timeout: float) -> None:
    async def done() -> bool:
        reader = OutboxReader(Versions(runtime.config.projections_dir).path(V))
        try:
            outbox = reader.head()
        finally:
            reader.close()
        return runtime.projector.stats.position == head and runtime.publisher.stats.watermark == outbox

    asyncio.run(wait_until(done, timeout_secs=timeout))


@pytest.mark.parametrize("notified", [True, False], ids=["notified", "polled"])
def test_the_runtime_applies_and_publishes_on_a_notification_or_by_polling(settings, notified):
    """fleet.log.appended wakes the projector and its commit wakes the publisher in-process (the
    polls are a minute apart); without notifications, polling alone gets there too."""
    s = graph_settings(settings)
    start_projection(s)
    append_events(s, workload(200))
    runtime = _runtime(s, poll_secs=60 if notified else 0.05)
    runtime.start()
    try:
        _published_up_to_the_head(runtime, 200, timeout=30)  # the first pass runs at start
        head = append_events(s, workload(300, start=200))
        if notified:
            async def notify() -> None:
                nc = await connect(s.nats_url, name="test")
                await nc.publish(LOG_APPENDED_SUBJECT, b"%d" % head)
                await nc.close()

            asyncio.run(notify())
        _published_up_to_the_head(runtime, head, timeout=10)
        state, details = runtime.health()
    finally:
        runtime.stop()
    projection = details["projections"][0]
    assert state == "ok" and projection["lag"] == 0 and details["changes"]["backlog"] == 0
    assert (projection["wakes"]["notified"] >= 1) == notified and projection["wakes"]["commits"] >= 2


def test_the_heartbeat_counts_entries_the_projector_has_not_looked_at_yet(settings):
    """Entries appended after the projector's last (short) batch are lag, not 0, until it
    looks (here it polls once a minute and is not notified)."""
    s = graph_settings(settings)
    start_projection(s)
    append_events(s, workload(200))
    runtime = _runtime(s, poll_secs=60)
    runtime.start()
    try:
        _published_up_to_the_head(runtime, 200, timeout=30)
        head = append_events(s, workload(500, start=200))
        state, details = runtime.health()
    finally:
        runtime.stop()
    projection = details["projections"][0]
    assert runtime.projector.stats.position == 200
    assert (projection["head"], projection["lag"]) == (head, 300) and details["backlog"] == 300


def test_fleet_project_is_woken_by_ingest_notifications_not_only_by_polling(settings):
    """`fleet project` with a one-minute poll still applies new entries at once on a ping."""
    from projections.read.reader import GraphReader

    s = graph_settings(settings)
    start_projection(s)
    env = settings_env(s)
    proc = subprocess.Popen(fleet_cmd("project", "--poll-ms", "60000"), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def position() -> int:
        with GraphReader(s.projections_dir) as reader:
            return reader.counts()["position"]

    try:
        time.sleep(2)  # connected and through its first (empty) pass
        head = append_events(s, workload(200))

        async def ping_until_applied() -> None:
            nc = await connect(s.nats_url, name="test")
            try:
                async def applied() -> bool:
                    await nc.publish(LOG_APPENDED_SUBJECT, b"%d" % head)
                    return position() == head
                await wait_until(applied, timeout_secs=15, interval_secs=0.5)
            finally:
                await nc.close()

        asyncio.run(ping_until_applied())
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.stderr.read().decode()[-2000:]
