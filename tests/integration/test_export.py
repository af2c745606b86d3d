"""`fleet export graph`: one consistent snapshot to start from, checkable by its digest."""

from __future__ import annotations

import asyncio
import hashlib
import json

import pytest

from events.log import EventLog
from projections.changes.contract import change_from_record, encode_change
from projections.changes.outbox import OutboxReader
from projections.errors import NoActiveVersion
from projections.model.ontology import NAME, VERSION
from projections.read.export import export_lines, export_stream, open_export
from projections.store.graph import GraphStore
from projections.versions.catalog import Versions
from projections.versions.digest import digest
from projections.versions.rebuild import rebuild
from tests.support.cli import fleet
from tests.support.projection import apply_log, simulated_log

EVENTS = 3000


def canonical(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def copy_digest(nodes: dict, edges: dict) -> str:
    """README "Export and digest", implemented here from the README alone."""
    lines = [canonical({"id": i, "type": t, "props": p}) for i, (t, p) in nodes.items()]
    lines += [canonical({"src": s, "edge": e, "dst": d, "props": p}) for (s, e, d), p in edges.items()]
    return f"{sum(int.from_bytes(hashlib.sha256(x).digest(), 'big') for x in lines) % 2**256:064x}"


def load(data: bytes) -> tuple[dict, dict, dict]:
    """What a new subscriber does with an export: the header, and a copy in dicts."""
    header_line, *lines = data.splitlines()
    header = json.loads(header_line)
    nodes, edges = {}, {}
    for line in lines:
        item = json.loads(line)
        if "id" in item:
            nodes[item["id"]] = (item["type"], item["props"])
        else:
            edges[(item["src"], item["edge"], item["dst"])] = item["props"]
    return header, nodes, edges


def follow(nodes: dict, edges: dict, version_dir, log_path, after: int) -> int:
    """Apply the version's change events with ``seq > after`` to the copy; returns the last seq."""
    reader = OutboxReader(version_dir)
    try:
        _, _, records = reader.read(after, 1_000_000)
    finally:
        reader.close()
    with EventLog(log_path, readonly=True) as event_log:
        causes, _ = event_log.causes(sorted({r["position"] for r in records}))
    last = after
    for record in records:
        event_id, occurred_at = causes.get(record["position"], (None, None))
        c = json.loads(encode_change(change_from_record(record, projection=NAME, version=VERSION,
                                                        event_id=event_id, occurred_at=occurred_at)))
        if c["kind"] == "node_upserted":
            nodes[c["node"]] = (c["node_type"], c["props"])
        elif c["kind"] == "node_deleted":
            nodes.pop(c["node"], None)
        elif c["kind"] in ("edge_added", "edge_updated"):
            edges[(c["src"], c["edge"], c["dst"])] = c.get("props", {})
        elif c["kind"] == "edge_removed":
            edges.pop((c["src"], c["edge"], c["dst"]), None)
        last = c["seq"]
    return last


def built(tmp_path, n: int = EVENTS):
    """A data dir with a log of ``n`` simulated events and its projection built and promoted."""
    simulated_log(tmp_path / "log.db", n)
    result = rebuild(tmp_path / "log.db", tmp_path / "projections")
    assert result.promoted
    return tmp_path


def test_export_reloads_into_a_copy_whose_digest_is_the_headers_and_fleet_projections(
        tmp_path, monkeypatch, capsys):
    """The exported lines, reloaded and hashed independently, give the header's digest, which is
    the one `fleet projections` prints; the header names the version, position and seq."""
    data_dir = built(tmp_path)
    out = tmp_path / "graph.jsonl"
    code, _, err = fleet(monkeypatch, capsys, "--data-dir", str(data_dir), "export", "graph",
                         "--output", str(out))
    assert code == 0, err
    header, nodes, edges = load(out.read_bytes())
    assert {k: header[k] for k in ("kind", "projection", "version", "position", "seq")} \
        == {"kind": "export", "projection": NAME, "version": VERSION, "position": EVENTS, "seq": 1}
    assert (header["nodes"], header["edges"]) == (len(nodes), len(edges)) and len(nodes) > 1000
    assert copy_digest(nodes, edges) == header["digest"]
    assert f"{len(nodes):,} nodes" in err and header["digest"] in err
    code, listing, _ = fleet(monkeypatch, capsys, "--data-dir", str(data_dir), "projections", "--json")
    [row] = json.loads(listing)["versions"]
    assert row["digest"] == header["digest"] and (row["nodes"], row["edges"]) == (len(nodes), len(edges))
    assert not list(tmp_path.glob(".graph.jsonl.part"))


def test_a_subscriber_starts_from_the_export_and_follows_from_seq_plus_one(tmp_path):
    """Export while live, more events are applied, the copy follows the changes after the
    header's seq: it ends equal to the live graph (digest)."""
    data_dir = built(tmp_path)
    path = Versions(data_dir / "projections").path(VERSION)
    with GraphStore(path) as store:
        simulated_log(data_dir / "log.db", EVENTS + 800, start=EVENTS)
        apply_log(store, data_dir / "log.db", batch=200)  # live: the outbox is on
        middle = b"".join(export_lines(store, projection=NAME, version=VERSION))
        simulated_log(data_dir / "log.db", EVENTS + 1500, start=EVENTS + 800)
        apply_log(store, data_dir / "log.db", batch=200)
        live = digest(store)
    header, nodes, edges = load(middle)
    assert header["seq"] > 1 and header["position"] == EVENTS + 800
    last = follow(nodes, edges, path, data_dir / "log.db", after=header["seq"])
    assert last > header["seq"]
    assert copy_digest(nodes, edges) == live.hexdigest and live.position == EVENTS + 1500


def test_the_export_is_one_snapshot_while_the_version_is_written(tmp_path):
    """Batches committed in the middle of an export do not leak into it: header and body agree."""
    data_dir = built(tmp_path)
    path = Versions(data_dir / "projections").path(VERSION)
    with GraphStore(path) as store:
        before = digest(store)
        blocks = export_lines(store, projection=NAME, version=VERSION)
        header = next(blocks)
        first = next(blocks)
        simulated_log(data_dir / "log.db", EVENTS + 500, start=EVENTS)
        apply_log(store, data_dir / "log.db", batch=100)
        rest = b"".join(blocks)
        assert digest(store).position == EVENTS + 500
    loaded, nodes, edges = load(header + first + rest)
    assert loaded["position"] == EVENTS and loaded["digest"] == before.hexdigest
    assert copy_digest(nodes, edges) == before.hexdigest


def test_the_http_stream_yields_the_same_export(tmp_path):
    """export_stream (for GET /graph/export) yields the CLI's bytes; no version is NotFound first."""
    data_dir = built(tmp_path)

    async def collect(projections_dir) -> bytes:
        return b"".join([block async for block in export_stream(projections_dir)])

    streamed = asyncio.run(collect(data_dir / "projections"))
    store, version, offset = open_export(data_dir / "projections")
    try:
        direct = b"".join(export_lines(store, projection=NAME, version=version, seq_offset=offset))
    finally:
        store.close()
    assert streamed == direct and streamed.count(b"\n") == 1 + sum(load(direct)[0][k]
                                                                    for k in ("nodes", "edges"))

    async def first_block(projections_dir):
        agen = export_stream(projections_dir)
        try:
            return await agen.__anext__()
        finally:
            await agen.aclose()

    with pytest.raises(NoActiveVersion, match="fleet replay graph"):
        asyncio.run(first_block(tmp_path / "nowhere"))


def test_export_errors_and_help(tmp_path, monkeypatch, capsys):
    """No active version and an unknown version exit 1 and say what to do; --help has an example."""
    code, _, err = fleet(monkeypatch, capsys, "--data-dir", str(tmp_path), "export", "graph")
    assert code == 1 and "fleet replay graph" in err
    built(tmp_path, 200)
    code, _, err = fleet(monkeypatch, capsys, "--data-dir", str(tmp_path), "export", "graph",
                         "--version", "99")
    assert code == 1 and "v99" in err and "fleet projections" in err
    code, out, _ = fleet(monkeypatch, capsys, "export", "--help")
    assert code == 0 and "Example" in out and "seq + 1" in out
