"""`fleet demo`: the quickstart ends with the graph built and queries that answer on its data."""

from __future__ import annotations

import json
import shlex
import subprocess

from tests.support.cli import fleet_cmd, settings_env


def _run(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(fleet_cmd(*args), env=env, capture_output=True, text=True, timeout=180)


def test_the_demo_builds_the_graph_and_every_query_it_suggests_answers(settings):
    """The printed queries run as they are, exit 0, and find something; a second demo adds nothing."""
    env = settings_env(settings)
    first = _run(env, "demo", "--events", "3000", "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads(first.stdout)
    graph = summary["graph"]
    assert graph["position"] == summary["log_head"] == 3000 and graph["nodes"] > 0 and graph["edges"] > 0
    queries = [c for c in summary["try"] if c.startswith("fleet query")]
    assert len(queries) >= 4 and any("open-issues" in c for c in queries)
    for command in queries:
        result = _run(env, *shlex.split(command)[1:], "--json")
        assert result.returncode == 0, (command, result.stderr[-2000:])
        answer = json.loads(result.stdout)
        assert answer, command  # each one finds something in this data
    again = json.loads(_run(env, "demo", "--events", "3000", "--json").stdout)
    assert again["appended"] == 0 and again["graph"]["position"] == 3000
    assert again["graph"]["nodes"] == graph["nodes"]


def test_the_demo_prints_what_to_try(settings):
    """Without --json: the graph's size and the commands, one per line."""
    result = _run(settings_env(settings), "demo", "--events", "500")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "graph     v" in result.stdout and "try (data in" in result.stdout
    assert "  fleet query open-issues " in result.stdout
    assert "being written by another process" not in result.stderr


def test_another_seed_adds_another_organisation(settings, tmp_path):
    """`fleet demo --seed 7` after the seed-0 demo grows the graph by exactly seed 7's own graph,
    and its ids are seed 7's (`project:simulate-7:...`)."""
    from ops.simulate import simulate
    from projections.store.graph import GraphStore
    from tests.support.projection import append, apply_log

    env = settings_env(settings)
    first = _run(env, "demo", "--events", "1500", "--json")
    assert first.returncode == 0, first.stderr[-3000:]
    second = _run(env, "demo", "--events", "1000", "--seed", "7", "--json")
    assert second.returncode == 0, second.stderr[-3000:]
    append(tmp_path / "seed7.db", simulate(1000, seed=7))
    with GraphStore(tmp_path / "seed7", create=True) as store:
        apply_log(store, tmp_path / "seed7.db", batch=500)
        with store.env.read() as txn:
            seed7_nodes = sum(store.counts(txn)["nodes"].values())
    grown = json.loads(second.stdout)["graph"]["nodes"] - json.loads(first.stdout)["graph"]["nodes"]
    assert grown == seed7_nodes > 0
    node = _run(env, "query", "node", "project:simulate-7:1", "--json")
    assert node.returncode == 0 and json.loads(node.stdout)["id"] == "project:simulate-7:1", node.stderr
