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
