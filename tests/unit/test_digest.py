"""The graph digest: nodes and edges only, computable by a subscriber over its copy."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path

from events.log import EventLog
from projections.changes.contract import change_from_record, edge_line, encode_change, node_line
from projections.changes.outbox import OutboxReader
from projections.model.ontology import NAME, VERSION
from projections.read.export import export
from projections.store.graph import GraphStore
from projections.store.writeset import encode_props
from projections.versions.digest import LineSum, digest
from tests.support.projection import append, apply_log, ev, small_project

#: README "Export and digest": the digest of its two-line example graph
README_EXAMPLE = (
    b'{"id":"user:gitlab:1","props":{"name":"Ann \xc3\x85","username":"ann"},"type":"User"}\n'
    b'{"dst":"project:gitlab:7","edge":"MEMBER_OF","props":{"role":"owner"},"src":"user:gitlab:1"}\n'
)


def reference_digest(nodes: dict, edges: dict) -> str:
    """The README's algorithm, written from the README alone: the stdlib, no graphfleet code."""
    def canonical(obj: dict) -> bytes:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    lines = [canonical({"id": i, "type": t, "props": p}) for i, (t, p) in nodes.items()]
    lines += [canonical({"src": s, "edge": e, "dst": d, "props": p or {}})
              for (s, e, d), p in edges.items()]
    total = sum(int.from_bytes(hashlib.sha256(line).digest(), "big") for line in lines)
    return f"{total % 2**256:064x}"


def wire(value):
    """A property value as change events carry it (msgspec writes UTC times with a ``Z``)."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


def changed_project() -> list:
    """The small organisation, then changes of every kind: updates, removals, deletions."""
    return small_project() + [
        ev("member.added", user_id=1, project_id=7, role="developer"),
        ev("member.updated", user_id=1, project_id=7, role="maintainer"),
        ev("issue.unlabeled", issue_id=101, project_id=7, label_id=2),
        ev("user.updated", user_id=2, username="bob", name="Bob \"B\" Ødegård ✓"),
        ev("issue.deleted", issue_id=102, project_id=7),
    ]


def follow_outbox(version_dir, log_path) -> tuple[dict, dict]:
    """A subscriber's copy, built from the outbox's records in their wire (JSON) form."""
    nodes: dict = {}
    edges: dict = {}
    reader = OutboxReader(version_dir)
    try:
        _, _, records = reader.read(0, 1_000_000)
    finally:
        reader.close()
    with EventLog(log_path, readonly=True) as event_log:
        causes, _ = event_log.causes(sorted({r["position"] for r in records if r.get("position")}))
    for record in records:
        event_id, occurred_at = causes.get(record.get("position"), (None, None))
        change = json.loads(encode_change(change_from_record(
            record, projection=NAME, version=VERSION, event_id=event_id, occurred_at=occurred_at)))
        kind = change["kind"]
        if kind == "node_upserted":
            nodes[change["node"]] = (change["node_type"], change["props"])
        elif kind == "node_deleted":
            nodes.pop(change["node"], None)
        elif kind in ("edge_added", "edge_updated"):
            edges[(change["src"], change["edge"], change["dst"])] = change.get("props", {})
        elif kind == "edge_removed":
            edges.pop((change["src"], change["edge"], change["dst"]), None)
    return nodes, edges


def test_a_subscriber_following_the_changes_computes_the_same_digest(tmp_path):
    """A copy kept from the change events alone, hashed by the README's recipe, matches digest()."""
    append(tmp_path / "log.db", changed_project())
    with GraphStore(tmp_path / "v", create=True) as store:
        apply_log(store, tmp_path / "log.db", batch=4)
        got = digest(store)
    nodes, edges = follow_outbox(tmp_path / "v", tmp_path / "log.db")
    assert got.hexdigest == reference_digest(nodes, edges)
    assert (got.nodes, got.edges, got.entries) == (len(nodes), len(edges), len(nodes) + len(edges))
    assert any(p for p in edges.values()), "an edge with properties is covered"


def test_the_digest_is_computable_from_the_plain_export(tmp_path):
    """export(store) with properties in their wire form gives the same digest."""
    append(tmp_path / "log.db", changed_project())
    with GraphStore(tmp_path / "v", create=True) as store:
        apply_log(store, tmp_path / "log.db")
        dump = export(store)
        got = digest(store)
    nodes = {i: (t, {k: wire(v) for k, v in p.items()}) for i, (t, p) in dump.nodes.items()}
    assert got.hexdigest == reference_digest(nodes, dump.edges)
    assert got.position == len(changed_project())


def test_the_digest_covers_nodes_and_edges_only(tmp_path):
    """Index, lookup and tombstone tables do not count; a node's properties do."""
    append(tmp_path / "log.db", changed_project())
    with GraphStore(tmp_path / "v", create=True) as store:
        apply_log(store, tmp_path / "log.db")
        before = digest(store)
        env = store.env
        with env.write() as txn:
            txn.put(b"\x01bookkeeping", b"x", db=env.idx)
            txn.put(b"\x02bookkeeping", b"\x00" * 8, db=env.lookup)
            txn.put(b"\x03bookkeeping", b"", db=env.tomb)
            txn.commit()
        assert digest(store) == before
        with env.write() as txn:
            key = next(iter(txn.cursor(env.nodes[3]).iternext(values=False)))  # a User
            txn.put(key, encode_props({"username": "mallory"}), db=env.nodes[3])
            txn.commit()
        assert digest(store).hexdigest != before.hexdigest


def test_an_empty_graph_and_the_readme_example():
    """No lines sum to zero; the README's worked example has the digest the README prints."""
    assert LineSum().hexdigest == "0" * 64
    lines = README_EXAMPLE.splitlines()
    assert lines[0] == node_line("user:gitlab:1", "User", {"username": "ann", "name": "Ann Å"})
    assert lines[1] == edge_line("user:gitlab:1", "MEMBER_OF", "project:gitlab:7", {"role": "owner"})
    summed = LineSum()
    summed.add_lines(README_EXAMPLE)
    expected = reference_digest({"user:gitlab:1": ("User", {"username": "ann", "name": "Ann Å"})},
                                {("user:gitlab:1", "MEMBER_OF", "project:gitlab:7"): {"role": "owner"}})
    assert summed.hexdigest == expected
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert expected in readme, "README's example digest is out of date"


def test_a_change_updates_a_running_digest(tmp_path):
    """Subtract the line a change replaces, add the new one: the digest of the new graph."""
    old = node_line("issue:gitlab:1", "Issue", {"state": "opened", "title": "Crash"})
    new = node_line("issue:gitlab:1", "Issue", {"state": "closed", "title": "Crash"})
    edge = edge_line("issue:gitlab:1", "HAS_LABEL", "label:gitlab:4", None)
    running = LineSum()
    running.add(old)
    running.add(edge)
    running.remove(old)
    running.add(new)
    fresh = LineSum()
    fresh.add_lines(edge + b"\n" + new + b"\n")
    assert (running.hexdigest, running.count) == (fresh.hexdigest, 2)
