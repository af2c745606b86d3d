"""The change contract and the version diff, without servers."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from ops.cli import cli
from ops.cli.changes import format_change
from projections.changes.contract import (
    NodeUpserted,
    change_from_record,
    change_msg_id,
    decode_change,
    encode_change,
    parse_msg_id,
)
from projections.changes.diff import diff_sorted
from projections.errors import VersionStateError
from projections.model.keys import pack_int
from projections.model.ontology import VERSION as V
from projections.model.records import decode_record
from projections.read.export import export, export_lines
from projections.store.graph import GraphStore
from projections.versions.catalog import Versions
from projections.versions.digest import digest
from projections.versions.rebuild import rebuild
from projections.versions.transition import emit_diff
from tests.support.changes import load_example, wire
from tests.support.projection import simulated_log


def test_outbox_records_become_contract_events():
    """A record plus projection, version and cause is a valid, round-tripping contract event."""
    record = {"seq": 7, "position": 12, "kind": "node_upserted", "node": "issue:gitlab:1",
              "node_type": "Issue", "props": {"title": "x"}, "changed": ["title"]}
    change = change_from_record(record, projection="graph", version=2, event_id="e-1",
                                occurred_at="2026-01-01T00:00:00Z")
    assert isinstance(change, NodeUpserted) and change.changed == ["title"]
    body = json.loads(encode_change(change))
    assert body["kind"] == "node_upserted" and body["version"] == 2 and body["event_id"] == "e-1"
    assert "diff" not in body  # defaults stay off the wire
    assert decode_change(encode_change(change)) == change
    edge = change_from_record({"seq": 8, "position": 12, "kind": "edge_removed", "src": "a:g:1",
                               "edge": "HAS_LABEL", "dst": "label:g:2"}, projection="graph", version=2)
    assert json.loads(encode_change(edge))["kind"] == "edge_removed"


def test_message_ids_name_projection_version_and_seq():
    """`graph@v3:17` parses back; anything else is not a change id."""
    assert change_msg_id("graph", 3, 17) == "graph@v3:17"
    assert parse_msg_id("graph@v3:17") == ("graph", 3, 17)
    for bad in (None, "", "graph@3:17", "graph@v3", "3f2a-uuid", "graph@vx:1"):
        assert parse_msg_id(bad) is None


def test_schema_changes_prints_every_kind():
    """`fleet schema changes` is the JSON Schema of the seven change kinds."""
    result = CliRunner().invoke(cli, ["schema", "changes"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert "discriminator" not in schema  # OpenAPI, not JSON Schema
    assert {d["properties"]["kind"]["enum"][0] for d in schema["$defs"].values()
            if "kind" in d.get("properties", {})} == {
        "node_upserted", "node_deleted", "edge_added", "edge_updated", "edge_removed", "rebuilt",
        "synced"}
    assert "diff" in schema["$defs"]["EdgeAdded"]["properties"]


def test_tail_lines_read_like_the_change():
    """One line per change: stream seq, version:seq, kind, the node or edge."""
    line = format_change(42, {"projection": "graph", "version": 1, "seq": 17, "kind": "edge_added",
                              "src": "issue:gitlab:9", "edge": "HAS_LABEL", "dst": "label:gitlab:4",
                              "position": 99})
    assert line.split() == ["42", "graph", "v1:17", "edge_added", "issue:gitlab:9", "-HAS_LABEL->",
                            "label:gitlab:4", "@99"]
    rebuilt = format_change(50, {"projection": "graph", "version": 2, "seq": 1, "kind": "rebuilt",
                                 "previous": 1, "position": 1000})
    assert "v2:1 rebuilt" in rebuilt and "previous=v1" in rebuilt


def test_diff_sorted_reports_only_differences():
    """A merge of two sorted tables: left-only, right-only and changed keys."""
    old = [(b"a", 1), (b"b", 2), (b"d", 4)]
    new = [(b"b", 2), (b"c", 3), (b"d", 5)]
    assert list(diff_sorted(old, new)) == [(b"a", 1, None), (b"c", None, 3), (b"d", 4, 5)]
    assert list(diff_sorted([], new)) == [(k, None, v) for k, v in new]


def _outbox(store: GraphStore, first: int) -> list[dict]:
    with store.env.read() as txn:
        cursor = txn.cursor(store.env.outbox)
        cursor.set_range(pack_int(first))
        return [decode_record(v) for v in cursor.iternext(keys=False)]


def _apply(copy, records: list[dict], version: int, start: tuple | None):
    changes = [wire(change_from_record(r, projection="graph", version=version)) for r in records]
    if start is not None:
        copy.db.execute("INSERT OR REPLACE INTO position VALUES ('graph', ?, ?, 1, NULL)", start)
    return copy.apply([(i + 2, c) for i, c in enumerate(changes)])


def test_the_diff_turns_the_old_version_into_the_new(tmp_path):
    """Old graph + rebuilt + diff = new graph; deletions, updates and removals included."""
    log_path = tmp_path / "log.db"
    simulated_log(log_path, 2500, seed=9)
    proj = tmp_path / "proj"
    rebuild(log_path, proj)
    simulated_log(log_path, 6000, seed=9, start=2500)
    rebuild(log_path, proj, version=V + 1)
    summary = emit_diff(proj)
    assert summary.version == V + 1 and summary.previous == V and summary.first_seq == 2
    assert summary.nodes_upserted and summary.nodes_deleted and summary.edges_added \
        and summary.edges_removed

    example = load_example()
    copy = example.GraphCopy(":memory:")
    with GraphStore(proj / "graph" / f"v{V}") as v1:
        old = export(v1)
    for key, (node_type, props) in old.nodes.items():
        copy.db.execute("INSERT INTO nodes VALUES (?, ?, ?)", (key, node_type, json.dumps(wire(props))))
    for (src, edge, dst), props in old.edges.items():
        copy.db.execute("INSERT INTO edges VALUES (?, ?, ?, ?)",
                        (src, edge, dst, json.dumps(wire(props)) if props else None))
    with GraphStore(proj / "graph" / f"v{V + 1}") as v2:
        records = _outbox(v2, 1)
        new = export(v2)
    assert records[0]["kind"] == "rebuilt" and all(r.get("diff") for r in records[1:-1])
    synced = records[-1]
    assert synced["kind"] == "synced" and not synced["resync"] and synced["previous"] == V
    assert synced["changes"] == summary.changes == len(records) - 2
    with GraphStore(proj / "graph" / f"v{V + 1}") as v2:
        assert synced["digest"] == digest(v2).hexdigest
    kinds = [r["kind"] for r in records[1:-1]]
    # Edges go before the nodes they hang off are deleted, and come after those they need.
    assert kinds.index("node_deleted") > max(i for i, k in enumerate(kinds) if k == "edge_removed")
    assert kinds.index("edge_added") > max(i for i, k in enumerate(kinds) if k == "node_upserted")
    applied, dropped = _apply(copy, records, V + 1, (V, 500))
    assert applied == len(records) and dropped == 0
    nodes, edges = copy.graph()
    assert nodes == {k: (t, wire(p)) for k, (t, p) in new.nodes.items()}
    assert edges == {k: (wire(p) if p else None) for k, p in new.edges.items()}
    assert copy.synced == 1 and copy.last_digest == synced["digest"]  # the example checked it


def test_a_diff_above_the_bound_is_not_sent_and_says_resync(tmp_path):
    """Over `max_changes` nothing of the diff is kept; one `synced` record tells subscribers to resync,
    and the example raises Resync on it (a copy that cannot follow loads the export)."""
    log_path = tmp_path / "log.db"
    simulated_log(log_path, 1500, seed=9)
    proj = tmp_path / "proj"
    rebuild(log_path, proj)
    simulated_log(log_path, 3000, seed=9, start=1500)
    rebuild(log_path, proj, version=V + 1)
    summary = emit_diff(proj, max_changes=10)
    assert summary.resync and summary.changes == 0 and summary.resync_changes == 11
    with GraphStore(proj / "graph" / f"v{V + 1}") as v2:
        records = _outbox(v2, 1)
    assert [r["kind"] for r in records] == ["rebuilt", "synced"]
    assert records[1]["resync"] and records[1]["changes"] == 11 and records[1]["digest"] is None
    example = load_example()
    copy = example.GraphCopy(":memory:")
    with pytest.raises(example.Resync, match="at least 11 differences"):
        _apply(copy, records, V + 1, (V, 500))
    assert copy.position() == (V, 500, 1, None)  # the batch was rolled back


def test_a_copy_whose_digest_differs_at_synced_resyncs(tmp_path):
    """A copy that lost a node is caught at the version change's `synced` record."""
    log_path = tmp_path / "log.db"
    simulated_log(log_path, 1500, seed=4)
    proj = tmp_path / "proj"
    rebuild(log_path, proj)
    emit_diff(proj)
    with GraphStore(proj / "graph" / f"v{V}") as v1:
        records = _outbox(v1, 1)
    example = load_example()
    copy = example.GraphCopy(":memory:")
    _apply(copy, records[:-1], V, None)
    copy.db.execute("DELETE FROM nodes WHERE rowid = (SELECT min(rowid) FROM nodes)")
    with pytest.raises(example.Resync, match="differs"):
        copy.apply([(len(records) + 1, wire(change_from_record(records[-1], projection="graph",
                                                               version=V)))])


def test_the_example_loads_an_export_and_checks_its_digest(tmp_path):
    """An export replaces the copy and sets its position to the header's version and seq;
    a line that went missing is refused by the digest and leaves the copy as it was."""
    log_path = tmp_path / "log.db"
    simulated_log(log_path, 1500, seed=4)
    proj = tmp_path / "proj"
    rebuild(log_path, proj)
    with GraphStore(proj / "graph" / f"v{V}") as v1:
        data = b"".join(export_lines(v1, projection="graph", version=V))
        expected = digest(v1).hexdigest
    lines = data.splitlines(keepends=True)
    example = load_example()
    copy = example.GraphCopy(":memory:")
    with pytest.raises(ValueError, match="differs from its header"):
        copy.load_export(lines[:5] + lines[6:], 123.0)
    assert copy.position() is None and copy.graph() == ({}, {})
    assert copy.load_export(lines, 123.0) == (V, 1)
    assert copy.digest() == expected and copy.position() == (V, 1, 0, 123.0)
    # Followed from an export: what other versions sent before it was taken is dropped, the
    # version's own next change applies.
    stale = {"kind": "node_upserted", "version": V - 1, "seq": 9, "node": "x", "node_type": "Issue"}
    later = {"kind": "edge_removed", "version": V, "seq": 2, "src": "a", "edge": "E", "dst": "b"}
    assert copy.apply([(40, stale), (41, later)]) == (1, 1)
    assert copy.position() == (V, 2, 41, None)


def test_a_diff_against_nothing_is_a_snapshot(tmp_path):
    """A first version's diff (it replaced none) upserts every node and adds every edge."""
    log_path = tmp_path / "log.db"
    simulated_log(log_path, 1500, seed=4)
    proj = tmp_path / "proj"
    rebuild(log_path, proj)
    summary = emit_diff(proj)
    assert summary.previous is None and summary.nodes_deleted == summary.edges_removed == 0
    copy = load_example().GraphCopy(":memory:")
    with GraphStore(proj / "graph" / f"v{V}") as v1:
        records = _outbox(v1, 1)
        dump = export(v1)
    _apply(copy, records, V, None)
    nodes, edges = copy.graph()
    assert nodes == {k: (t, wire(p)) for k, (t, p) in dump.nodes.items()}
    assert len(edges) == len(dump.edges) == summary.edges_added


def test_emit_diff_refuses_a_version_that_is_not_active(tmp_path):
    """The diff follows a `rebuilt` notice, so it needs a promoted version."""
    log_path = tmp_path / "log.db"
    simulated_log(log_path, 300, seed=4)
    rebuild(log_path, tmp_path / "proj", promote=False)
    assert Versions(tmp_path / "proj").info(V).state == "ready"
    with pytest.raises(VersionStateError, match="promote it first"):
        emit_diff(tmp_path / "proj", version=V)
