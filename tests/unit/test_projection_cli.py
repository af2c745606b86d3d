"""The projection commands in-process: replay, projections, rollback, drop, query."""

from __future__ import annotations

import asyncio
import json

import pytest

from projections.model.ontology import VERSION as V
from tests.support.cli import fleet
from tests.support.projection import append, small_project


@pytest.fixture
def data_dir(tmp_path):
    append(tmp_path / "log.db", small_project())
    return tmp_path


def test_replay_then_list_versions(monkeypatch, capsys, data_dir):
    """replay builds and promotes; projections lists state, position, lag, counts, digest."""
    code, out, _ = fleet(monkeypatch, capsys, "--data-dir", str(data_dir), "replay", "graph", "--json",
                        )
    assert code == 0
    summary = json.loads(out)
    assert summary["promoted"] and summary["position"] == 15 and summary["digest"]
    code, out, _ = fleet(monkeypatch, capsys, "--data-dir", str(data_dir), "projections", "--json")
    [row] = json.loads(out)["versions"]
    assert (row["version"], row["state"], row["position"], row["lag"], row["poison"]) \
        == (V, "active", 15, 0, 0)
    assert row["nodes"] > 0 and row["edges"] > 0 and row["digest"] == summary["digest"]
    code, out, _ = fleet(monkeypatch, capsys, "--data-dir", str(data_dir), "projections")
    assert code == 0 and "active" in out and summary["digest"] in out
    code, _, err = fleet(monkeypatch, capsys, "--data-dir", str(data_dir), "replay", "graph")
    assert code == 1 and "already active" in err


def test_query_commands(monkeypatch, capsys, data_dir):
    """Each query answers in text and JSON; unknown and malformed ids exit 1 and 2."""
    fleet(monkeypatch, capsys, "--data-dir", str(data_dir), "replay", "graph")
    d = ("--data-dir", str(data_dir), "query")
    code, out, _ = fleet(monkeypatch, capsys, *d, "node", "gitlab:platform/api#1", "--json")
    assert code == 0 and json.loads(out)["props"]["title"] == "Crash on save"
    code, out, _ = fleet(monkeypatch, capsys, *d, "neighbors", "issue:gitlab:100", "-d", "in", "-e", "CLOSES")
    assert code == 0 and "merge_request:gitlab:500" in out
    code, out, _ = fleet(monkeypatch, capsys, *d, "hops", "issue:gitlab:100", "-k", "2", "--json")
    assert code == 0 and json.loads(out)["nodes"]["issue:gitlab:102"] == 2
    code, out, _ = fleet(monkeypatch, capsys, *d, "path", "user:gitlab:1", "issue:gitlab:102")
    assert code == 0 and "issue:gitlab:102" in out
    code, out, _ = fleet(monkeypatch, capsys, *d, "path", "issue:gitlab:102", "issue:gitlab:100",
                         "-e", "BLOCKS", "--directed")
    assert code == 1 and "no path" in out
    code, out, _ = fleet(monkeypatch, capsys, *d, "find", "issue", "state=opened", "project_id=7", "--json")
    assert code == 0 and len(json.loads(out)["items"]) == 2
    code, out, _ = fleet(monkeypatch, capsys, *d, "counts", "--json")
    assert code == 0 and json.loads(out)["nodes"]["Issue"] == 3
    code, out, _ = fleet(monkeypatch, capsys, *d, "open-issues", "gitlab:platform/api", "--label", "bug")
    assert code == 0 and "Crash on save" in out
    code, out, _ = fleet(monkeypatch, capsys, *d, "closed-by", "issue:gitlab:101", "--json")
    assert code == 0 and json.loads(out)["items"][0]["type"] == "Commit"
    code, out, _ = fleet(monkeypatch, capsys, *d, "authored", "project:gitlab:7")
    assert code == 0 and "user:gitlab:2" in out
    code, out, _ = fleet(monkeypatch, capsys, *d, "blocks", "issue:gitlab:100", "--json")
    assert code == 0 and [b["depth"] for b in json.loads(out)["items"]] == [1, 2]
    code, _, err = fleet(monkeypatch, capsys, *d, "node", "issue:gitlab:4242")
    assert code == 1 and "no node issue:gitlab:4242" in err
    code, _, err = fleet(monkeypatch, capsys, *d, "node", "nonsense")
    assert code == 2 and "neither a node id" in err
    code, _, err = fleet(monkeypatch, capsys, *d, "find", "widget")
    assert code == 2 and "unknown node type" in err


def test_errors_before_anything_exists(monkeypatch, capsys, tmp_path):
    """No log, no active version, nothing to roll back, unknown version: clear messages."""
    d = ("--data-dir", str(tmp_path))
    code, _, err = fleet(monkeypatch, capsys, *d, "replay", "graph")
    assert code == 1 and "no log" in err
    code, _, err = fleet(monkeypatch, capsys, *d, "query", "counts")
    assert code == 1 and "no active version" in err
    code, _, err = fleet(monkeypatch, capsys, *d, "rollback", "graph")
    assert code == 1 and "no active version" in err
    code, _, err = fleet(monkeypatch, capsys, *d, "projections", "drop", "graph", "v9")
    assert code == 1 and "no version v9" in err
    code, out, _ = fleet(monkeypatch, capsys, *d, "projections")
    assert code == 0 and "no projection versions" in out
    code, _, _ = fleet(monkeypatch, capsys, *d, "replay", "nosuch")
    assert code == 2


def test_rollback_and_drop(monkeypatch, capsys, data_dir):
    """rollback re-activates the previous version; drop removes the retired one."""
    from projections.versions.rebuild import rebuild

    rebuild(data_dir / "log.db", data_dir / "projections")
    rebuild(data_dir / "log.db", data_dir / "projections", version=V + 1)
    d = ("--data-dir", str(data_dir))
    code, out, _ = fleet(monkeypatch, capsys, *d, "rollback", "graph", "--json")
    result = json.loads(out)
    assert code == 0 and (result["projection"], result["from"], result["to"]) == ("graph", V + 1, V)
    assert result["diff"]["version"] == V and result["diff"]["previous"] == V + 1
    code, _, err = fleet(monkeypatch, capsys, *d, "projections", "drop", "graph", f"v{V}")
    assert code == 1 and "is active" in err
    code, out, _ = fleet(monkeypatch, capsys, *d, "projections", "drop", "graph", f"v{V + 1}")
    assert code == 0 and f"dropped graph v{V + 1}" in out


def test_every_command_has_help_with_an_example(monkeypatch, capsys):
    """--help works everywhere and shows an example."""
    commands = [["replay"], ["projections"], ["projections", "drop"], ["projections", "poison"],
                ["rollback"], ["project"], ["query"]] + [
        ["query", c] for c in ("node", "neighbors", "hops", "path", "find", "counts", "open-issues",
                               "closed-by", "authored", "blocks")]
    for command in commands:
        code, out, _ = fleet(monkeypatch, capsys, *command, "--help")
        assert code == 0 and "Example" in out, command


def test_replay_check_compares_the_live_version_with_a_fresh_build(monkeypatch, capsys, data_dir):
    """--check on a live version: equal digests at one position, nothing promoted; a live
    version that drifted from its log exits 1."""
    from events.types import Actor
    from projections.store.graph import GraphStore
    from projections.store.writeset import encode_props
    from projections.versions.catalog import Versions
    from tests.support.projection import ev
    from workers.projector.loop import Projector, ProjectorConfig

    base = ("--data-dir", str(data_dir))
    fleet(monkeypatch, capsys, *base, "replay", "graph")
    append(data_dir / "log.db", [ev("user.created", user_id=77, username="late", actor=Actor(id=1))])
    projector = Projector(data_dir / "log.db", data_dir / "projections", ProjectorConfig())
    stats = asyncio.run(asyncio.wait_for(projector.run(asyncio.Event(), until_caught_up=True), 30))
    assert stats.applied == 1  # the live projector applied what came after the build
    code, out, _ = fleet(monkeypatch, capsys, *base, "replay", "graph", "--check", "--json",
                        )
    result = json.loads(out)
    assert code == 0 and result["equal"] and result["position"] == 16
    assert [v.state for v in Versions(data_dir / "projections").list()] == ["active"]
    with GraphStore(Versions(data_dir / "projections").path(V)) as store, store.env.write() as txn:
        key = next(iter(txn.cursor(store.env.nodes[next(iter(store.env.nodes))]).iternext(values=False)))
        txn.put(key, encode_props({"tampered": True}), db=store.env.nodes[key[0]])
        txn.commit()
    code, out, _ = fleet(monkeypatch, capsys, *base, "replay", "graph", "--check")
    assert code == 1 and "DIFFERENT" in out, out
    assert not list((data_dir / "projections" / "graph").glob(".check-*"))


def test_the_replay_progress_line_shows_rate_eta_and_memory_against_the_budget():
    """What an operator watches during a long rebuild."""
    from ops.cli.projections import _bar
    from projections.versions.rebuild import RebuildProgress

    line = _bar(RebuildProgress("bulk", 3, 400_000, 1_000_000, 0, 41_234.0, 14.6, 9.7,
                                300 << 20, 1024 << 20))
    assert "400000/1000000" in line and "40.0%" in line and "41,234 ev/s" in line
    assert "ETA    15s" in line and "mem 300/1,024 MB" in line
