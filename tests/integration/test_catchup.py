"""A projector far behind the log catches up in segments, and a downstream copy stays exact.

Real nats-server, real LMDB and SQLite: the projector folds the backlog with
coalesced change records, the change publisher sends them, and the README's
example subscriber (examples/downstream_copy.py) applies them to its copy.
"""

from __future__ import annotations

import asyncio

from projections.changes.outbox import OutboxReader
from projections.store.graph import GraphStore
from projections.versions.digest import digest
from tests.support.changes import (
    append_events,
    load_example,
    projected,
    projection_graph,
    publish_and_read,
    run_example,
    workload,
)
from tests.support.projection import apply_log
from workers.projector.loop import Projector, ProjectorConfig


def _catch_up(s, config: ProjectorConfig):
    projector = Projector(s.log_path, s.projections_dir, config)
    return asyncio.run(asyncio.wait_for(projector.run(asyncio.Event(), until_caught_up=True), 60))


def test_a_backlog_is_folded_in_segments_and_the_copy_follows_exactly(settings, tmp_path):
    s, version_dir = projected(settings, 500)  # v1 active, 500 events applied live
    db = tmp_path / "copy.sqlite"
    publish_and_read(s)
    run_example(s, db)
    reader = OutboxReader(version_dir)
    before = reader.head()
    reader.close()

    append_events(s, workload(3_000, start=500))
    stats = _catch_up(s, ProjectorConfig(batch_max=100, poll_interval_ms=20, catchup_lag=200,
                                         catchup_events=900))
    assert stats.applied == 2_500 and stats.poisoned == 0 and stats.lag == 0
    assert stats.batches == 3  # segments of 900, 900 and 700 events

    reader = OutboxReader(version_dir)
    records = reader.read(before, 1 << 20)[2]
    reader.close()
    coalesced = [r for r in records if r.get("coalesced")]
    assert coalesced and all(500 < r["first_position"] <= r["position"] for r in coalesced)

    _, messages = publish_and_read(s)
    sent = [c for _, _, c in messages if c.get("coalesced")]
    assert len(sent) == len(coalesced)
    assert all("event_id" not in c and c["first_position"] <= c["position"] for c in sent)
    run_example(s, db)
    copy = load_example().GraphCopy(db)
    try:
        assert copy.graph() == projection_graph(s)
    finally:
        copy.close()

    # The graph is the one batch-by-batch live apply builds from the same log.
    with GraphStore(tmp_path / "live", create=True) as live, GraphStore(version_dir) as caught_up:
        apply_log(live, s.log_path, batch=100)
        assert digest(caught_up).hexdigest == digest(live).hexdigest


def test_near_the_head_the_projector_applies_batches_with_one_change_per_event(settings):
    s, version_dir = projected(settings, 300)
    append_events(s, workload(450, start=300))
    stats = _catch_up(s, ProjectorConfig(batch_max=50, poll_interval_ms=20, catchup_lag=200))
    assert stats.applied == 150 and stats.batches == 3
    reader = OutboxReader(version_dir)
    records = reader.read(0, 1 << 20)[2]
    reader.close()
    assert not any(r.get("coalesced") for r in records)
