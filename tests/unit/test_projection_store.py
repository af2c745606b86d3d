"""The LMDB store: same graph as its in-memory twin, exactly once, poison, growth, digest."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.log import EventLog
from events.logrows import Accepted
from events.types import Actor, Commit
from projections.errors import PoisonEvent, StoreError
from projections.fold import overlay as overlay_module
from projections.fold.applier import Applier, plan_rows
from projections.fold.apply import apply
from projections.fold.memory import MemoryGraph
from projections.model.mutations import MERGE
from projections.model.ontology import VERSION
from projections.read.export import check_derived, export
from projections.read.reader import GraphReader
from projections.store.graph import GraphStore
from projections.versions.digest import digest
from projections.versions.rebuild import rebuild
from tests.support.projection import append, ev, garbage, simulated_log
from tests.support.strategies import event_lists


def _planned(events):
    return [(n, apply(e)) for n, e in enumerate(events, start=1)]


def _apply_log(store: GraphStore, log_path, *, batch: int, precise: bool = True):
    results = []
    with EventLog(log_path, readonly=True) as event_log:
        def describe(position):
            entry = event_log.get(position)
            return entry.event_id, entry.type

        applier = Applier(store, precise=precise, strict=False, outbox=precise, describe=describe)
        for rows in event_log.read_payloads(1, batch_size=batch):
            results.append(applier.apply(plan_rows(rows)))
    return results


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(events=event_lists(max_size=30), splits=st.lists(st.integers(1, 40), max_size=3),
       precise=st.booleans())
def test_lmdb_store_matches_its_memory_twin(tmp_path_factory, events, splits, precise):
    """Random events through LMDB (any batching, either mode) equal the in-memory twin's graph."""
    planned = _planned(events)
    memory = MemoryGraph()
    memory.apply_events(events)
    with GraphStore(tmp_path_factory.mktemp("lmdb"), create=True, map_size=1 << 20) as store:
        applier = Applier(store, precise=precise, strict=True, outbox=precise)
        start = 0
        for cut in [*sorted(c for c in set(splits) if c < len(planned)), len(planned)]:
            if planned[start:cut]:
                applier.apply(planned[start:cut])
            start = cut
        assert export(store) == export(memory)
        assert check_derived(store) == []


def test_rebuild_digest_equals_the_live_digest(tmp_path):
    """A rebuild from 0 (the fold engine, several segments) and live batches end in one digest."""
    log_path = tmp_path / "log.db"
    simulated_log(log_path, 6000, seed=3)
    with GraphStore(tmp_path / "live", create=True) as live:
        _apply_log(live, log_path, batch=333)
        live_digest = digest(live)
        live_graph = export(live)
    result = rebuild(log_path, tmp_path / "proj", budget_bytes=256 << 10)
    assert result.promoted and result.position == 6000
    assert result.digest == live_digest.hexdigest
    with GraphStore(tmp_path / "proj" / "graph" / f"v{VERSION}") as built:
        assert export(built) == live_graph
        assert check_derived(built, strict_lookups=False) == []


def test_digest_depends_on_content_only(tmp_path):
    """The digest changes with the graph and not with how it was written."""
    events = [ev("user.created", user_id=1, username="ann"),
              ev("project.created", project_id=1, name="A", path="a")]
    digests = []
    for name, batches in (("one", [events]), ("two", [events[:1], events[1:]])):
        with GraphStore(tmp_path / name, create=True) as store:
            applier = Applier(store, precise=False, strict=True, outbox=False)
            position = 0
            for batch in batches:
                applier.apply([(position + n, apply(e)) for n, e in enumerate(batch, start=1)])
                position += len(batch)
            digests.append(digest(store))
    assert digests[0].hexdigest == digests[1].hexdigest
    with GraphStore(tmp_path / "three", create=True) as store:
        Applier(store, precise=False, strict=True, outbox=False).apply(_planned(events[:1]))
        assert digest(store).hexdigest != digests[0].hexdigest


def test_a_batch_applied_twice_changes_nothing(tmp_path):
    """Exactly once: a replayed batch is dropped by the checkpoint check in its transaction."""
    planned = _planned([ev("user.created", user_id=1, username="ann"),
                        ev("issue.opened", issue_id=1, project_id=1, iid=1, title="t", author_id=1)])
    with GraphStore(tmp_path / "v", create=True) as store:
        applier = Applier(store, precise=True, strict=False, outbox=True)
        first = applier.apply(planned)
        before = digest(store)
        again = applier.apply(planned)
        assert (first.applied, again.applied) == (2, 0)
        assert digest(store) == before
        assert store.checkpoint() == 2


def test_a_gap_in_positions_is_refused(tmp_path):
    """A batch that does not start right after the checkpoint is an error, not a silent skip."""
    with GraphStore(tmp_path / "v", create=True) as store:
        applier = Applier(store, precise=False, strict=True, outbox=False)
        with pytest.raises(StoreError, match="at position 0 but the batch starts at 5"):
            applier.apply([(5, apply(ev("user.created", user_id=1, username="ann")))])


def test_live_poison_is_recorded_and_skipped(tmp_path):
    """Live mode: an undecodable entry is recorded with position and reason; the rest applies."""
    log_path = tmp_path / "log.db"
    # Logged before validation refused a membership naming neither project nor group.
    orphan = json.dumps({"type": "member.added", "event_id": "orphan-1", "source": "gitlab",
                         "occurred_at": "2026-01-01T00:00:00Z", "user_id": 1})
    append(log_path, [ev("user.created", user_id=1, username="ann"), garbage(1),
                      Accepted("orphan-1", "member.added", "gitlab", "2026-01-01T00:00:00Z", orphan),
                      ev("user.created", user_id=2, username="bob")])
    with GraphStore(tmp_path / "v", create=True) as store:
        [result] = _apply_log(store, log_path, batch=100)
        assert result.checkpoint == 4 and result.applied == 2
        assert [p.position for p in result.poisoned] == [2, 3]
        assert result.poisoned[0].event_id == "poison-1"
        assert result.poisoned[1].event_type == "member.added"
        assert "not_json" in result.poisoned[0].reason
        assert "names its project (`project_id`) or its group" in result.poisoned[1].reason
        assert set(export(store).nodes) == {"user:gitlab:1", "user:gitlab:2"}
        with store.env.read() as txn:
            assert txn.stat(store.env.poison)["entries"] == 2


def test_live_apply_and_a_rebuild_skip_the_same_poison_and_agree(tmp_path):
    """A logged event that cannot be applied: both record and skip it; the digests are equal."""
    log_path = tmp_path / "log.db"
    orphan = json.dumps({"type": "member.removed", "event_id": "orphan-2", "source": "gitlab",
                         "occurred_at": "2026-01-01T00:00:00Z", "user_id": 1})
    append(log_path, [ev("user.created", user_id=1, username="ann"), garbage(3),
                      Accepted("orphan-2", "member.removed", "gitlab", "2026-01-01T00:00:00Z", orphan),
                      ev("project.created", project_id=4, name="P", path="p"),
                      ev("member.added", user_id=1, project_id=4)])
    result = rebuild(log_path, tmp_path / "proj")
    assert result.promoted and result.poisoned == 2 and result.position == 5
    with GraphStore(tmp_path / "live", create=True) as live, \
            GraphStore(tmp_path / "proj" / "graph" / f"v{VERSION}") as built:
        [live_result] = _apply_log(live, log_path, batch=100)
        assert [p.position for p in live_result.poisoned] == [2, 3]
        assert digest(live).hexdigest == digest(built).hexdigest
        with built.env.read() as txn:
            assert txn.stat(built.env.poison)["entries"] == 2


def test_a_failure_writing_a_batch_is_pinned_on_its_event(tmp_path, monkeypatch):
    """An exception outside one event's apply (writing the batch) makes that event poison only."""
    from projections.fold import applier as applier_module

    real = applier_module.build_writeset

    def failing(overlay):
        if any(isinstance(v, dict) and v.get("username") == "boom" for v in overlay.nodes.values()):
            raise OverflowError("simulated: a value the encoder cannot take")
        return real(overlay)

    monkeypatch.setattr(applier_module, "build_writeset", failing)
    log_path = tmp_path / "log.db"
    append(log_path, [ev("user.created", user_id=1, username="ann"),
                      ev("user.created", user_id=2, username="boom"),
                      ev("user.created", user_id=3, username="cy")])
    with GraphStore(tmp_path / "v", create=True) as store:
        [result] = _apply_log(store, log_path, batch=100)
        assert result.checkpoint == 3 and result.applied == 2
        assert [p.position for p in result.poisoned] == [2]
        assert "OverflowError: simulated" in result.poisoned[0].reason
        assert set(export(store).nodes) == {"user:gitlab:1", "user:gitlab:3"}


def test_poison_inside_the_overlay_rolls_back_that_event_only(tmp_path, monkeypatch):
    """An event that fails half-applied is skipped whole; its neighbours in the batch apply."""
    real_merge = overlay_module.Overlay.merge

    def exploding_merge(self, key, patch):
        if patch.get("name") == "boom":
            raise RuntimeError("simulated bug")
        return real_merge(self, key, patch)

    monkeypatch.setitem(overlay_module._OPS, MERGE, exploding_merge)
    log_path = tmp_path / "log.db"
    append(log_path, [ev("user.created", user_id=1, username="ann"),
                      ev("project.created", project_id=1, name="A", path="a"),
                      ev("user.updated", user_id=1, name="boom", actor=Actor(id=5, username="eve")),
                      ev("user.created", user_id=2, username="bob")])
    with GraphStore(tmp_path / "v", create=True) as store:
        [result] = _apply_log(store, log_path, batch=100)
        assert [p.position for p in result.poisoned] == [3]
        assert "RuntimeError: simulated bug" in result.poisoned[0].reason
        assert result.poisoned[0].event_type == "user.updated"
        nodes = export(store).nodes
        assert "user:gitlab:5" not in nodes  # the poison event's first mutation was undone
        assert nodes["user:gitlab:1"][1] == {"username": "ann"}


def test_rebuild_stops_on_poison_naming_position_and_event(tmp_path):
    """Strict mode: a rebuild stops at the poison; the message names position and event."""
    log_path = tmp_path / "log.db"
    append(log_path, [ev("user.created", user_id=1, username="ann"),
                      ev("user.created", user_id=2, username="bob"), garbage(7),
                      ev("user.created", user_id=3, username="cy")])
    with pytest.raises(PoisonEvent) as caught:
        rebuild(log_path, tmp_path / "proj", strict=True)
    error = caught.value
    assert error.position == 3 and error.event_id == "poison-7"
    assert "log position 3" in str(error) and "poison-7" in str(error)
    assert "fleet log show 3" in str(error)
    with GraphStore(tmp_path / "proj" / "graph" / f"v{VERSION}") as store:
        assert store.checkpoint() == 2  # what came before the poison is kept, and resumable


def test_out_of_order_and_stale_events(tmp_path):
    """Events about unknown nodes create stubs; events after a deletion are ignored."""
    events = [
        ev("issue.labeled", issue_id=1, project_id=1, label_id=4),  # before the issue exists
        ev("issue.opened", issue_id=1, project_id=1, iid=1, title="late", author_id=2),
        ev("issue.deleted", issue_id=2, project_id=1),  # never seen: tombstoned anyway
        ev("issue.opened", issue_id=2, project_id=1, iid=2, title="zombie", author_id=2),
        ev("issue.deleted", issue_id=1, project_id=1),
        ev("issue.labeled", issue_id=1, project_id=1, label_id=4),  # stale redelivery
        ev("comment.created", comment_id=1, project_id=1, target_type="issue", target_id=1,
           author_id=2, body="hi"),
    ]
    with GraphStore(tmp_path / "v", create=True) as store:
        Applier(store, precise=True, strict=True, outbox=True).apply(_planned(events))
        graph = export(store)
    assert "issue:gitlab:1" not in graph.nodes and "issue:gitlab:2" not in graph.nodes
    assert {"issue:gitlab:1", "issue:gitlab:2"} <= graph.tombs
    assert graph.nodes["label:gitlab:4"] == ("Label", {})  # the stub outlives the issue
    assert ("comment:gitlab:1", "COMMENTED_ON", "issue:gitlab:1") not in graph.edges
    assert ("user:gitlab:2", "AUTHORED", "comment:gitlab:1") in graph.edges


def test_a_creation_logged_late_keeps_what_later_events_set(tmp_path):
    """Webhooks arrive out of order (retries, parallel deliveries): an issue's `opened` logged
    after its close, edit and transfer, a project's `created` after its archival and transfer,
    leave the state those later events set, in live apply and in a rebuild alike."""
    opened = ev("issue.opened", issue_id=1, project_id=1, iid=1, title="first title", author_id=2,
                milestone_id=8)
    created = ev("project.created", project_id=1, name="p", path="p", group_id=10)
    sha = "c0ffee" * 6 + "abcd"
    later = [
        ev("comment.edited", comment_id=5, project_id=1, body="edited"),
        ev("merge_request.merged", merge_request_id=4, project_id=1, merge_commit_sha=sha),
        ev("issue.edited", issue_id=1, project_id=1, title="second title"),
        ev("issue.closed", issue_id=1, project_id=1),
        ev("issue.transferred", issue_id=1, project_id=1, to_project_id=3, iid=7),
        ev("issue.milestoned", issue_id=1, project_id=3, milestone_id=9),
        ev("project.archived", project_id=1),
        ev("project.transferred", project_id=1, group_id=11, path="g11/p"),
    ]
    log_path = tmp_path / "log.db"
    pushed = ev("commits.pushed", project_id=1, ref="refs/heads/main", after=sha,
                commits=[Commit(sha=sha, message="Merge branch 'x'", author_name="ann")])
    comment = ev("comment.created", comment_id=5, project_id=1, target_type="issue", target_id=1,
                 author_id=2, body="hi")
    append(log_path, [*later, opened, created, pushed, comment])
    with GraphStore(tmp_path / "live", create=True) as live:
        _apply_log(live, log_path, batch=3)
        graph = export(live)
        live_digest = digest(live).hexdigest
    issue = graph.nodes["issue:gitlab:1"][1]
    assert issue["state"] == "closed" and issue["title"] == "second title"
    assert (issue["project_id"], issue["iid"], issue["author_id"]) == (3, 7, 2)  # opened fills in
    project = graph.nodes["project:gitlab:1"][1]
    assert project["archived"] is True and project["path"] == "g11/p" and project["group_id"] == 11
    out = {(e, dst) for src, e, dst in graph.edges if src in ("issue:gitlab:1", "project:gitlab:1")}
    assert ("IN_PROJECT", "project:gitlab:3") in out and ("IN_PROJECT", "project:gitlab:1") not in out
    assert ("IN_MILESTONE", "milestone:gitlab:9") in out and ("IN_MILESTONE", "milestone:gitlab:8") not in out
    assert ("IN_GROUP", "group:gitlab:11") in out and ("IN_GROUP", "group:gitlab:10") not in out
    # Comments and commits are created without a read in a rebuild; the same holds there.
    assert graph.nodes["comment:gitlab:5"][1].keys() >= {"updated_at", "author_id", "created_at"}
    assert graph.nodes[f"commit:gitlab:{sha}"][1]["title"] == "Merge branch 'x'"
    result = rebuild(log_path, tmp_path / "proj", budget_bytes=1)  # a segment per event
    assert result.digest == live_digest
    with GraphStore(tmp_path / "proj" / "graph" / f"v{VERSION}") as built:
        assert export(built) == graph


def test_the_map_grows_by_itself(tmp_path):
    """A version that outgrows its LMDB map doubles it and retries the batch."""
    log_path = tmp_path / "log.db"
    simulated_log(log_path, 3000)
    result = rebuild(log_path, tmp_path / "proj", map_size=256 << 10, with_digest=False)
    assert result.position == 3000
    with GraphStore(tmp_path / "proj" / "graph" / f"v{VERSION}") as store:
        assert store.env.env.info()["map_size"] > 256 << 10
    with GraphReader(tmp_path / "proj") as reader:
        assert sum(reader.counts()["nodes"].values()) > 1000


def test_live_batches_write_dense_outbox_records(tmp_path):
    """An active version writes one change record per change, keyed by a dense sequence."""
    from projections.model.keys import unpack_int
    from projections.model.records import decode_record

    log_path = tmp_path / "log.db"
    append(log_path, [ev("user.created", user_id=1, username="ann"),
                      ev("issue.opened", issue_id=1, project_id=1, iid=1, title="t", author_id=1),
                      ev("issue.closed", issue_id=1, project_id=1),
                      ev("issue.deleted", issue_id=1, project_id=1)])
    with GraphStore(tmp_path / "v", create=True) as store:
        _apply_log(store, log_path, batch=2)
        with store.env.read() as txn:
            records = [(unpack_int(k), decode_record(v)) for k, v in txn.cursor(store.env.outbox)]
    assert [seq for seq, _ in records] == list(range(1, len(records) + 1))
    kinds = [(r["kind"], r.get("node") or r.get("edge")) for _, r in records]
    assert ("node_upserted", "issue:gitlab:1") in kinds
    closed = [r for _, r in records if r["kind"] == "node_upserted" and r["position"] == 3]
    assert closed and closed[0]["props"]["state"] == "closed" and "state" in closed[0]["changed"]
    assert kinds[-1][0] == "node_deleted" or ("edge_removed", "AUTHORED") in kinds
    assert records[-1][1]["position"] == 4


def test_the_memory_twin_creates_beneath_a_stored_node_like_the_store(tmp_path):
    """A blind creation (a rebuild's comments) of a node an earlier batch stored: the twin
    merges the creation beneath it as the LMDB store does."""
    events = [ev("comment.edited", comment_id=5, project_id=1, body="edited"),
              ev("comment.created", comment_id=5, project_id=1, target_type="issue", target_id=1,
                 author_id=2, body="hi")]
    memory = MemoryGraph()
    for event in events:  # one batch each: the creation finds the node stored
        memory.apply_events([event])
    with GraphStore(tmp_path / "v", create=True) as store:
        applier = Applier(store, precise=False, strict=True, outbox=False)
        for planned in _planned(events):
            applier.apply([planned])
        assert export(store) == export(memory)
    props = export(memory).nodes["comment:gitlab:5"][1]
    assert props.keys() >= {"updated_at", "author_id", "created_at", "target_type"}
