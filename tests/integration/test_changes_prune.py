"""Outbox pruning: the projector deletes what the publisher has had acknowledged, and nothing else."""

from __future__ import annotations

import asyncio

from projections.changes.outbox import OutboxReader
from projections.model.ontology import VERSION as V
from projections.versions.catalog import Versions
from projections.versions.lanes import read_watermark, write_watermark
from tests.support.changes import (
    append_events,
    project,
    projected,
    publish_all,
    publish_and_read,
    read_stream,
    workload,
)
from workers.natsio.client import connect
from workers.projector.loop import Projector, ProjectorConfig


def _outbox(version_dir) -> tuple[int, int, list[int]]:
    """(head, pruned floor, seqs still stored) of a version's outbox."""
    reader = OutboxReader(version_dir)
    try:
        head, floor, records = reader.read(0, 1_000_000)
    finally:
        reader.close()
    return head, floor, [r["seq"] for r in records]


def _prune(s, *, steps: int, prune_max: int) -> list[int]:
    """Step a projector ``steps`` times with pruning at every step; the floor after each."""
    projector = Projector(s.log_path, s.projections_dir,
                          ProjectorConfig(outbox_prune_secs=0, outbox_prune_max=prune_max,
                                          auto_rebuild=False))
    version_dir = Versions(s.projections_dir).path(V)
    floors = []
    try:
        for _ in range(steps):
            projector.step()
            floors.append(_outbox(version_dir)[1])
    finally:
        projector.close()
    assert projector.stats.pruned == floors[-1]
    return floors


def test_the_projector_prunes_only_acknowledged_records_a_bounded_batch_at_a_time(settings):
    """Records at or below the watermark go, at most outbox_prune_max per transaction; the rest stay."""
    s, version_dir = projected(settings, 300)
    head, floor, seqs = _outbox(version_dir)
    assert floor == 0 and seqs == list(range(1, head + 1)) and head > 500
    watermark = 450
    write_watermark(version_dir, watermark, f"graph@v{V}:{watermark}")

    floors = _prune(s, steps=8, prune_max=100)

    assert floors == [100, 200, 300, 400, 450, 450, 450, 450]
    after_head, after_floor, after_seqs = _outbox(version_dir)
    assert after_head == head and after_floor == watermark
    assert after_seqs == list(range(watermark + 1, head + 1))


def test_a_lost_watermark_below_the_pruned_floor_goes_on_without_a_gap_or_a_repeat(settings):
    """Pruned, then the watermark file is lost: new changes go out once, right after the old ones."""
    s, version_dir = projected(settings, 300)

    first, _ = publish_and_read(s)
    assert _prune(s, steps=1, prune_max=1_000_000) == [first.watermark]
    append_events(s, workload(400, start=300))
    project(s)
    (version_dir / "changes.published").unlink()

    again, messages = publish_and_read(s)

    head = _outbox(version_dir)[0]
    assert [c["seq"] for _, _, c in messages] == list(range(1, head + 1))
    assert again.duplicates == 0 and again.published == head - first.watermark
    assert read_watermark(version_dir) == head


def test_a_recreated_stream_gets_only_what_is_left_after_the_floor(settings):
    """The stream is gone and the watermark too: publishing resumes at the floor, not at seq 1."""
    s, version_dir = projected(settings, 300)

    async def publish(*, drop_stream: bool = False):
        nc = await connect(s.nats_url, name="t")
        if drop_stream:
            await nc.jetstream().delete_stream(s.graph_stream)
        stats = await publish_all(nc, s)
        messages = await read_stream(nc, s)
        await nc.close()
        return stats, messages

    first, _ = asyncio.run(publish())
    _prune(s, steps=1, prune_max=1_000_000)
    append_events(s, workload(400, start=300))
    project(s)
    (version_dir / "changes.published").unlink()

    again, messages = asyncio.run(publish(drop_stream=True))

    head = _outbox(version_dir)[0]
    assert [c["seq"] for _, _, c in messages] == list(range(first.watermark + 1, head + 1))
    assert again.skipped == first.watermark and read_watermark(version_dir) == head
