"""Graph-change events: outbox -> GRAPH stream -> a downstream copy (real nats-server, real LMDB)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time

from click.testing import CliRunner

from events.log import EventLog
from ops.cli import cli
from ops.wiring import change_publisher
from projections.changes.contract import Rebuilt, change_msg_id, change_subject, encode_change
from projections.changes.outbox import append_rebuilt
from projections.model.ontology import VERSION as V
from projections.store import env as lmdbenv
from projections.store.graph import GraphStore
from projections.store.lock import WriterLock
from projections.versions.catalog import Versions
from projections.versions.lanes import prunable, read_watermark, write_watermark
from projections.versions.rebuild import rebuild
from projections.versions.transition import emit_diff
from projections.versions.transition import rollback as transition_rollback
from tests.support.changes import (
    append_events,
    graph_env,
    graph_settings,
    load_example,
    project,
    projected,
    projection_graph,
    publish_all,
    publish_and_read,
    read_stream,
    run_example,
    start_projection,
    traceparent,
    workload,
)
from tests.support.cli import fleet_cmd
from tests.support.wait import wait_until
from workers.natsio.client import connect

NEXT = V + 1  # the version a schema change would bring


def _dense(messages, version: int) -> list[int]:
    return [c["seq"] for _, _, c in messages if c["version"] == version]


def test_every_change_goes_out_in_order_with_its_cause(settings, spans):
    """Each outbox record is published once, in seq order, with id, subject, event id, time, trace."""
    s = graph_settings(settings)
    start_projection(s)
    events = workload(1500)
    traced = {3, 700, 1499}
    append_events(s, events, traced=traced)
    project(s)
    spans.clear()

    stats, messages = publish_and_read(s)
    with GraphStore(s.projections_dir / "graph" / f"v{V}") as store:
        head = _outbox_head(store)
    assert stats.published == head == len(messages) and stats.backlog == 0
    assert [c["seq"] for _, _, c in messages] == list(range(1, head + 1))
    with EventLog(s.log_path, readonly=True) as event_log:
        by_position = {e.position: e for batch in event_log.read() for e in batch}
    first = messages[0][2]
    assert first["kind"] == "rebuilt" and first.get("previous") is None
    traced_positions = {i + 1 for i in traced}
    seen_traced = set()
    for _, headers, change in messages:
        assert headers["Nats-Msg-Id"] == f"graph@v{V}:{change['seq']}"
        assert change["projection"] == "graph" and change["version"] == V
        if change["kind"] == "rebuilt":
            continue
        entry = by_position[change["position"]]
        assert change["event_id"] == entry.event_id and change["occurred_at"] == entry.occurred_at
        if change["position"] in traced_positions:
            seen_traced.add(change["position"])
            trace_id = traceparent(change["position"] - 1).split("-")[1]
            assert headers["traceparent"].split("-")[1] == trace_id  # the event's trace goes on
        else:
            assert "traceparent" not in headers
    assert seen_traced == traced_positions
    published = [sp for sp in spans.get_finished_spans() if sp.name == "graph.change publish"]
    assert {format(sp.context.trace_id, "032x") for sp in published} == {
        traceparent(i).split("-")[1] for i in traced}


def _outbox_head(store: GraphStore) -> int:
    from projections.store.graph import OUTBOX_SEQ

    with store.env.read() as txn:
        return store.meta_int(txn, OUTBOX_SEQ)


def test_subjects_name_the_projection_and_the_kind(settings):
    """Changes travel on <prefix>.graph.<kind>, so subscribers can filter by kind."""
    s, _ = projected(settings, 300)

    async def main():
        nc = await connect(s.nats_url, name="t")
        await publish_all(nc, s)
        js = nc.jetstream()
        sub = await js.subscribe(f"{s.graph_subject_prefix}.graph.edge.added", stream=s.graph_stream,
                                 ordered_consumer=True)
        msg = await sub.next_msg(timeout=5)
        await nc.close()
        return msg

    msg = asyncio.run(main())
    change = json.loads(msg.data)
    assert change["kind"] == "edge_added"
    assert msg.subject == change_subject("graph", "edge_added", s.graph_subject_prefix)


def test_a_building_or_ready_version_emits_nothing(settings):
    """Outbox records of a version that was never promoted are not published."""
    s, _ = projected(settings, 200)
    versions = Versions(s.projections_dir)
    versions.create(NEXT)  # building, with an outbox record that must not go out
    with GraphStore(versions.path(NEXT), create=True) as store:
        append_rebuilt(store, projection="graph", version=NEXT, previous=V, digest=None)
    rebuild(s.log_path, s.projections_dir, version=NEXT + 1, promote=False)  # ready
    assert [v.state for v in versions.list()] == ["active", "building", "ready"]

    stats, messages = publish_and_read(s)
    assert {c["version"] for _, _, c in messages} == {V}
    assert stats.backlog == 0

    result = CliRunner().invoke(cli, ["changes", "status", "--json"], env=graph_env(s))
    assert result.exit_code == 0, result.output
    rows = {r["version"]: r for r in json.loads(result.output)["versions"]}
    assert rows[V]["published"] and rows[V]["backlog"] == 0
    assert not rows[NEXT]["published"] and rows[NEXT]["head"] == 1 and rows[NEXT]["watermark"] == 0
    assert not rows[NEXT + 1]["published"]


def test_promotion_with_emit_diff_sends_old_first_then_rebuilt_then_the_diff(settings, tmp_path):
    """v1's last changes, then v2's `rebuilt`, then the diff; the example's copy becomes v2."""
    s, _ = projected(settings, 1200)
    db = tmp_path / "copy.sqlite"

    publish_and_read(s)[0]
    run_example(s, db)  # the copy follows v1

    append_events(s, workload(1600, start=1200))
    project(s)  # v1 moves on; these changes are not published yet
    append_events(s, workload(2000, start=1600))  # v1 never sees these
    result = rebuild(s.log_path, s.projections_dir, version=NEXT)
    assert result.promoted and result.previous == V
    v1 = Versions(s.projections_dir).path(V)

    async def held_back():
        """While v1 is still locked (being written), v2 waits; v1's backlog goes out."""
        nc = await connect(s.nats_url, name="t")
        publisher = change_publisher(nc, s)
        with WriterLock(v1):
            await publisher.publish_pending()
            state, details = publisher.health()
        messages = await read_stream(nc, s)
        await publisher.close()
        await nc.close()
        return details, messages

    details, messages = asyncio.run(held_back())
    assert details["waiting_on"] == f"v{V} is still being written" and details["backlog"] >= 1
    assert {c["version"] for _, _, c in messages} == {V}

    summary = emit_diff(s.projections_dir, version=NEXT)
    assert summary.previous == V and summary.first_seq == 2 and summary.changes > 100
    assert summary.nodes_upserted and summary.edges_added

    stats = publish_and_read(s)[0]
    assert stats.backlog == 0

    async def read():
        nc = await connect(s.nats_url, name="t")
        messages = await read_stream(nc, s)
        await nc.close()
        return messages

    messages = asyncio.run(read())
    versions = [c["version"] for _, _, c in messages]
    assert versions == sorted(versions)  # every v1 change before any v2 change
    v2 = [c for _, _, c in messages if c["version"] == NEXT]
    assert v2[0]["kind"] == "rebuilt" and v2[0]["seq"] == 1 and v2[0]["previous"] == V
    assert [c["seq"] for c in v2] == list(range(1, summary.last_seq + 2))
    assert all(c.get("diff") for c in v2[1:-1]) and not v2[0].get("diff")
    assert v2[-1]["kind"] == "synced" and v2[-1]["changes"] == summary.changes
    assert _dense(messages, V) == list(range(1, len(_dense(messages, V)) + 1))

    run_example(s, db)
    copy = load_example().GraphCopy(db)
    nodes, edges = copy.graph()
    assert copy.position()[:2] == (NEXT, summary.last_seq + 1)
    assert copy.digest() == v2[-1]["digest"]
    copy.close()
    expected_nodes, expected_edges = projection_graph(s, NEXT)
    assert nodes == expected_nodes and edges == expected_edges


def test_a_lost_watermark_skips_ahead_instead_of_republishing(settings):
    """With the watermark gone, the stream's last id tells the publisher where it was."""
    s, path = projected(settings, 400)
    first, _ = publish_and_read(s)
    (path / "changes.published").unlink()
    again, _ = publish_and_read(s)
    assert again.published == 0 and again.duplicates == 0 and again.skipped == first.watermark
    assert read_watermark(path) == first.watermark


def test_beyond_the_dedup_window_the_fence_prevents_duplicates(settings):
    """A watermark behind the stream, past the dedup window: the fence refuses, nothing doubles."""
    s, path = projected(settings, 300, dedup_window_secs=1)

    async def main():
        nc = await connect(s.nats_url, name="t")
        first = await publish_all(nc, s)
        write_watermark(path, first.watermark // 2, "rewound")
        js = nc.jetstream()

        async def window_passed():
            last = await js.get_last_msg(s.graph_stream, f"{s.graph_subject_prefix}.>")
            return time.time() - last.time.timestamp() > 1.2

        await wait_until(window_passed, timeout_secs=10, interval_secs=0.1)
        again = await publish_all(nc, s)
        messages = await read_stream(nc, s)
        await nc.close()
        return first, again, messages

    first, again, messages = asyncio.run(main())
    assert again.published == 0 and again.duplicates == 0
    assert again.skipped == first.watermark - first.watermark // 2
    assert [c["seq"] for _, _, c in messages] == list(range(1, first.watermark + 1))


def test_health_reports_state_backlog_and_progress(settings):
    """health() says starting, then ok with no backlog and a fresh progress time once drained."""
    s, _ = projected(settings, 200)

    async def main():
        nc = await connect(s.nats_url, name="t")
        publisher = change_publisher(nc, s, batch_max=50)
        before = publisher.health()
        await publisher.publish_pending()
        after = publisher.health()
        await publisher.close()
        await nc.close()
        return before, after

    before, (state, details) = asyncio.run(main())
    assert before[0] == "starting"
    assert state == "ok" and details["backlog"] == 0 and details["head"] == details["watermark"] > 50
    assert details["version"] == V and time.time() - details["progress_at"] < 30


def test_tail_follows_the_stream_in_a_terminal(settings):
    """`fleet changes tail` prints one line per change; --json prints the events as sent."""
    s, _ = projected(settings, 100)

    publish_and_read(s)
    lines = subprocess.run(fleet_cmd("changes", "tail", "--all", "-n", "3"), env=graph_env(s),
                           capture_output=True, text=True, timeout=30)
    assert lines.returncode == 0, lines.stderr
    first, second, third = lines.stdout.splitlines()
    assert first.split()[:4] == ["1", "graph", f"v{V}:1", "rebuilt"]
    assert second.split()[2:4] == [f"v{V}:2", "node_upserted"] and third.split()[2] == f"v{V}:3"
    raw = subprocess.run(fleet_cmd("changes", "tail", "--from-seq", "2", "-n", "2", "--json"),
                         env=graph_env(s), capture_output=True, text=True, timeout=30)
    assert raw.returncode == 0, raw.stderr
    assert [json.loads(line)["seq"] for line in raw.stdout.splitlines()] == [2, 3]


def test_after_a_rollback_the_old_version_goes_on_after_the_newer_one(settings):
    """Rolled back to v1: v2's changes go out first, then v1's new ones (the fence re-anchors)."""
    s, _ = projected(settings, 300)

    publish_and_read(s)
    rebuild(s.log_path, s.projections_dir, version=NEXT)
    publish_and_read(s)  # v2's rebuilt notice
    Versions(s.projections_dir).rollback()
    append_events(s, workload(400, start=300))
    project(s)  # v1 is active again and moves on
    stats, messages = publish_and_read(s)
    order = [(c["version"], c["seq"]) for _, _, c in messages]
    v2_at = order.index((NEXT, 1))
    assert all(v == V for v, _ in order[:v2_at]) and all(v == V for v, _ in order[v2_at + 1:])
    v1 = [seq for v, seq in order if v == V]
    assert v1 == list(range(1, len(v1) + 1)) and len(v1) > v2_at
    assert stats.backlog == 0 and stats.version == V


def test_a_version_rebuilt_after_a_machine_crash_goes_on_densely_on_the_stream(settings):
    """A damaged v1 is rebuilt as v1 again: its changes follow the old ones' sequence on the
    stream (a `rebuilt` notice first), never reusing an id that dedup would swallow."""
    s, v1 = projected(settings, 300)
    _, before = publish_and_read(s)
    last = _dense(before, V)[-1]
    (v1 / lmdbenv.UNSYNCED).write_text(json.dumps({"boot_id": "an-earlier-boot"}))
    append_events(s, workload(500, start=300))
    project(s)  # sets v1 aside, rebuilds it from the log, promotes it
    publish_and_read(s)
    append_events(s, workload(700, start=500))
    project(s)
    _, after = publish_and_read(s)  # a new publisher: it reads the shift it chose
    seqs = _dense(after, V)
    assert seqs == list(range(1, len(seqs) + 1)) and len(seqs) > last + 1
    notice = after[last][2]  # the first change after the old ones
    assert notice["kind"] == "rebuilt" and notice["previous"] == V  # subscribers carry v1 over
    assert all(h["Nats-Msg-Id"] == f"graph@v{V}:{c['seq']}" for _, h, c in after)
    assert prunable(v1) == read_watermark(v1) > 0  # the outbox is pruned as usual


def test_a_rebuilt_version_starts_above_the_stream_when_another_version_published_last(settings):
    """The stream's last change is of another version: the damaged one's highest id is unknown,
    so the new one starts above the stream's last sequence (a gap, never an id twice)."""
    s, v1 = projected(settings, 200)
    _, before = publish_and_read(s)
    other = Rebuilt(projection="graph", version=7, seq=1, position=0)

    async def publish_another_versions_change() -> int:
        nc = await connect(s.nats_url, name="t")
        ack = await nc.jetstream().publish(
            change_subject("graph", "rebuilt", s.graph_subject_prefix), encode_change(other),
            headers={"Nats-Msg-Id": change_msg_id("graph", other.version, other.seq)})
        await nc.close()
        return ack.seq

    stream_last = asyncio.run(publish_another_versions_change())
    (v1 / lmdbenv.UNSYNCED).write_text(json.dumps({"boot_id": "an-earlier-boot"}))
    project(s)
    _, after = publish_and_read(s)
    new = [c for _, _, c in after[len(before) + 1:]]  # after the other version's change
    assert new and new[0]["kind"] == "rebuilt" and new[0]["version"] == V
    assert new[0]["seq"] == stream_last + 1 > max(_dense(before, V))
    assert [c["seq"] for c in new] == list(range(stream_last + 1, stream_last + 1 + len(new)))


def test_a_version_replayed_from_scratch_never_reuses_its_message_ids(settings):
    """Roll back from v2, replay v2 from scratch, promote it again: the new v2's changes go out
    after the old v2's on the stream, none dropped as a duplicate of an old id."""
    s, _ = projected(settings, 300)
    publish_and_read(s)
    rebuild(s.log_path, s.projections_dir, version=NEXT, emit_diff=True)
    _, first = publish_and_read(s)
    old_v2 = _dense(first, NEXT)
    transition_rollback(s.projections_dir)
    append_events(s, workload(400, start=300))
    project(s)
    publish_and_read(s)
    result = rebuild(s.log_path, s.projections_dir, version=NEXT, from_scratch=True,
                     emit_diff=True)
    assert result.promoted and result.previous == V and result.diff["changes"] == 0  # same content
    stats, messages = publish_and_read(s)
    assert stats.backlog == 0 and stats.duplicates == 0
    v2 = _dense(messages, NEXT)
    # nothing swallowed: the new incarnation's rebuilt notice and synced follow the old one's
    assert v2[:len(old_v2)] == old_v2 and len(v2) == len(old_v2) + 2
    assert len(set(v2)) == len(v2)
    again = [c for _, _, c in messages if c["version"] == NEXT][len(old_v2)]
    assert again["kind"] == "rebuilt" and again["previous"] == V and again["seq"] > max(old_v2)


def test_the_example_copy_stays_exact_across_promotion_and_rollback(settings, tmp_path):
    """Following the README's rules (the example), a copy equals v2 after its promotion and v1
    again after a rollback, with no resync and no HTTP read."""
    s, _ = projected(settings, 600)
    db = tmp_path / "copy.sqlite"
    publish_and_read(s)
    run_example(s, db)
    append_events(s, workload(900, start=600))  # v1 never applies these: v2's diff carries them
    rebuild(s.log_path, s.projections_dir, version=NEXT, emit_diff=True)
    publish_and_read(s)
    run_example(s, db)
    copy = load_example().GraphCopy(db)
    assert copy.graph() == projection_graph(s, NEXT) and copy.position()[0] == NEXT
    copy.close()
    transition_rollback(s.projections_dir)
    publish_and_read(s)
    run_example(s, db)
    copy = load_example().GraphCopy(db)
    assert copy.graph() == projection_graph(s, V) and copy.position()[0] == V
    copy.close()


def test_one_process_publishes_a_projection_and_another_stands_by(settings):
    """Two workers during a deploy: the second publisher stands by (health says so, it is
    never 'drained') and takes over, from the watermark, once the first one stops."""
    s, _ = projected(settings, 300)

    async def go():
        nc = await connect(s.nats_url, name="t")
        first, second = change_publisher(nc, s), change_publisher(nc, s)
        try:
            assert await first.publish_pending() > 0
            assert await second.publish_pending() == 0
            assert "pid" in second.health()[1]["standby"] and not second.drained
            await first.close()
            await asyncio.to_thread(append_events, s, workload(400, start=300))
            await asyncio.to_thread(project, s)
            assert await second.publish_pending() > 0 and second.standby is None
        finally:
            await second.close()
        messages = await read_stream(nc, s)
        await nc.close()
        return messages

    messages = asyncio.run(go())
    seqs = [c["seq"] for _, _, c in messages]
    assert seqs == list(range(1, len(seqs) + 1))  # no change twice, none skipped
