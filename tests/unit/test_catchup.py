"""Catch-up: an active version folded forward in segments, with coalesced change records.

Two oracles: the graph equals the one live apply (batch by batch) builds from
the same log, and the coalesced records, applied in order to a copy of the
graph as it stood before the catch-up, turn that copy into the graph after.
"""

from __future__ import annotations

import pytest

from events.log import EventLog
from projections.changes.outbox import OutboxReader
from projections.fold.applier import Applier, plan_rows
from projections.fold.engine import fold_log
from projections.read.export import export
from projections.store.graph import GraphStore
from projections.versions.digest import digest
from tests.support.projection import append, apply_log
from tests.unit.test_fold_engine import TINY, _raise_on_poison, _workload

N = 1_500


@pytest.fixture(scope="module")
def log_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("catchup") / "log.db"
    append(path, _workload(N, seed=3))
    return path


def _live_digest(log_path, path):
    with GraphStore(path, create=True) as store:
        apply_log(store, log_path, batch=97)
        return digest(store)


def _apply_live(store: GraphStore, log_path, upto: int) -> None:
    applier = Applier(store, precise=True, strict=False, outbox=True)
    with EventLog(log_path, readonly=True) as event_log:
        for rows in event_log.read_payloads(1, batch_size=50, to_position=upto):
            applier.apply(plan_rows(rows))


def _records(store: GraphStore, after: int) -> list[dict]:
    reader = OutboxReader(store.path)
    try:
        return reader.read(after, 1 << 30)[2]
    finally:
        reader.close()


def _replay(copy, records: list[dict]) -> None:
    """Apply change records to a copy, as a downstream service following the rules would."""
    nodes, edges = copy.nodes, copy.edges
    for r in records:
        kind = r["kind"]
        if kind == "node_upserted":
            nodes[r["node"]] = (r["node_type"], r["props"])
        elif kind == "node_deleted":
            del nodes[r["node"]]  # every deletion names a node the copy holds
        elif kind == "edge_removed":
            del edges[(r["src"], r["edge"], r["dst"])]
        else:
            key = (r["src"], r["edge"], r["dst"])
            assert (key in edges) == (kind == "edge_updated"), r
            edges[key] = r.get("props") or None


@pytest.mark.parametrize("split,segment,budget", [
    (0, 10_000, 1 << 30),  # the whole log as one segment on an empty version
    (400, 10_000, 1 << 30),
    (400, 137, 1 << 30),  # many small segments
    (900, 10_000, TINY),  # segments cut by the memory budget
])
def test_coalesced_changes_turn_the_copy_before_into_the_graph_after(
        log_path, tmp_path, monkeypatch, split, segment, budget):
    _raise_on_poison(monkeypatch)  # in both paths: one event fails in the fold as in live apply
    with GraphStore(tmp_path / "v", create=True) as store:
        _apply_live(store, log_path, split)
        copy = export(store)
        seq = OutboxReader(store.path)
        before = seq.head()
        seq.close()
        head = store.checkpoint()
        total = N + 5  # the workload's extra rows
        folded = 0
        while head < total:
            result = fold_log(store, log_path, head + 1, head + segment, changes=True,
                              budget_bytes=budget)
            assert result.position > head
            folded += result.events + len(result.poisoned)
            head = result.position
        assert folded == total - split
        records = _records(store, before)
        assert records and all(r["coalesced"] for r in records)
        assert all(split < r["first_position"] <= r["position"] for r in records)
        _replay(copy, records)
        after = export(store)
        assert copy.nodes == after.nodes
        assert copy.edges == after.edges
        assert digest(store) == _live_digest(log_path, tmp_path / "live")


def test_no_record_for_what_a_segment_creates_and_deletes_or_sets_back(tmp_path):
    """The records say what changed, net: nothing for a node created and deleted, nor for a
    property set and set back."""
    from tests.support.projection import ev

    s = {"source": "gitlab"}
    log = tmp_path / "log.db"
    append(log, [ev("project.created", **s, project_id=1, name="p", path="g/p"),
                 ev("user.created", **s, user_id=5, username="u"),
                 ev("issue.opened", **s, issue_id=10, project_id=1, iid=1, title="t", author_id=5)])
    with GraphStore(tmp_path / "v", create=True) as store:
        _apply_live(store, log, 3)
        reader = OutboxReader(store.path)
        before = reader.head()
        reader.close()
        append(log, [ev("issue.opened", **s, issue_id=11, project_id=1, iid=2, title="x", author_id=5),
                     ev("issue.deleted", **s, issue_id=11, project_id=1),
                     ev("issue.edited", **s, issue_id=10, project_id=1, title="u"),
                     ev("issue.edited", **s, issue_id=10, project_id=1, title="t")])
        result = fold_log(store, log, changes=True)
        assert result.events == 4 and result.outbox == 1
        (record,) = _records(store, before)
        # issue 11 came and went; issue 10's title is back where it was: only its edit time moved
        assert record["kind"] == "node_upserted" and record["node"] == "issue:gitlab:10"
        assert record["changed"] == ["updated_at"] and record["props"]["title"] == "t"
        assert (record["first_position"], record["position"]) == (4, 7)
