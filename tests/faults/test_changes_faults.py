"""Change publishing under faults: kill -9 between ack and watermark, a NATS restart."""

from __future__ import annotations

import asyncio
import json
import subprocess

import pytest

from ops.embedded import NatsServer
from ops.settings import load_settings
from ops.wiring import graph_stream
from projections.changes.outbox import OutboxReader
from projections.model.ontology import VERSION as V
from projections.versions.catalog import Versions
from projections.versions.lanes import read_watermark
from tests.support.changes import (
    append_events,
    graph_env,
    graph_settings,
    load_example,
    projected,
    projection_graph,
    read_stream,
    run_example,
    start_projection,
    workload,
)
from tests.support.cli import fleet_cmd
from tests.support.wait import wait_until
from workers.changefeed.publisher import ChangePublisher, ChangesConfig
from workers.natsio.client import connect
from workers.projector.loop import Projector, ProjectorConfig

pytestmark = pytest.mark.slow


def test_kill_9_between_ack_and_watermark_leaves_no_gap(settings):
    """SIGKILL after JetStream acked a round but before the watermark: the rerun republishes
    exactly those seqs with the same Nats-Msg-Id (JetStream drops them), and nothing is missing."""
    s, version_dir = projected(settings, 1200)
    killed = subprocess.run(fleet_cmd("changes", "publish", "--until-drained", "--batch", "300"),
                            env=graph_env(s, FLEET_FAILPOINT="changes_after_ack:3"),
                            capture_output=True, timeout=60)
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert read_watermark(version_dir) == 600  # two rounds recorded, the third acked but not

    rerun = subprocess.run(fleet_cmd("changes", "publish", "--until-drained", "--batch", "300",
                                     "--json"), env=graph_env(s), capture_output=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    summary = json.loads(rerun.stdout)
    reader = OutboxReader(version_dir)
    head = reader.head()
    reader.close()
    # The third round went out again under the same ids: JetStream recognised every one.
    assert summary["duplicates"] == 300
    assert summary["published"] == head - 900 and summary["backlog"] == 0

    async def read():
        nc = await connect(s.nats_url, name="t")
        messages = await read_stream(nc, s)
        await nc.close()
        return messages

    messages = asyncio.run(read())
    assert [c["seq"] for _, _, c in messages] == list(range(1, head + 1))
    assert all(h["Nats-Msg-Id"] == f"graph@v{V}:{c['seq']}" for _, h, c in messages)


def test_a_nats_restart_in_the_middle_loses_nothing(tmp_path):
    """Stop and restart nats-server while changes flow: every seq arrives, once, in order."""
    server = NatsServer(tmp_path / "nats").start()
    s = graph_settings(load_settings({}, data_dir=tmp_path / "data", nats_url=server.url,
                                     embedded_nats=False, stream="SDLC_restart"))
    start_projection(s)
    events = workload(3000)
    chunks = [events[i:i + 250] for i in range(0, len(events), 250)]

    async def main():
        nc = await connect(s.nats_url, name="changes")
        publisher = ChangePublisher(nc, s.projections_dir, s.log_path, stream=graph_stream(s),
                                    config=ChangesConfig(batch_max=1000, poll_interval_ms=20,
                                                         ack_timeout_secs=1,
                                                         subject_prefix=s.graph_subject_prefix))
        projector = Projector(s.log_path, s.projections_dir,
                              ProjectorConfig(batch_max=300, poll_interval_ms=20))
        stop = asyncio.Event()
        tasks = [asyncio.create_task(projector.run(stop)),
                 asyncio.create_task(publisher.run(stop))]
        restarted = False
        for n, chunk in enumerate(chunks):
            await asyncio.to_thread(append_events, s, chunk)
            projector.notify()
            if n == len(chunks) // 2:
                await wait_until(lambda: publisher.stats.watermark > 0, timeout_secs=20)
                server.stop()
                await asyncio.to_thread(append_events, s, chunks[n + 1])  # the outbox keeps growing
                projector.notify()
                server.start()
                restarted = True
                chunks[n + 1] = []
        await wait_until(lambda: projector.stats.lag == 0 and projector.stats.head == len(events),
                       timeout_secs=30)
        reader = OutboxReader(Versions(s.projections_dir).path(V))
        head = reader.head()
        reader.close()
        await wait_until(lambda: nc.is_connected and publisher.stats.watermark == head, timeout_secs=30)
        stop.set()
        await asyncio.gather(*tasks)
        messages = await read_stream(nc, s)
        await nc.close()
        return restarted, head, publisher.stats, messages

    try:
        restarted, head, stats, messages = asyncio.run(main())
        assert restarted
        assert [c["seq"] for _, _, c in messages] == list(range(1, head + 1))
        assert stats.published + stats.duplicates + stats.skipped >= head
        run_example(s, tmp_path / "copy.sqlite")
        copy = load_example().GraphCopy(tmp_path / "copy.sqlite")
        nodes, edges = copy.graph()
        copy.close()
        assert (nodes, edges) == projection_graph(s)
    finally:
        server.stop()
