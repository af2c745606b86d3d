"""Queries over the active version: nodes, neighbours, hops, paths, find, and real questions."""

from __future__ import annotations

import asyncio

import pytest
from conftest import wait_for
from test_projection_support import append, ev, simulated_log, small_project

from projections import questions
from projections.errors import NoActiveVersion, QueryError, UnknownNode
from projections.query import GraphReader
from projections.rebuild import rebuild
from projections.versions import Versions
from workers.projector import Projector, ProjectorConfig


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    root = tmp_path_factory.mktemp("queries")
    append(root / "log.db", small_project())
    rebuild(root / "log.db", root / "proj", workers=0)
    with GraphReader(root / "proj") as reader:
        yield reader


def ids(nodes):
    return sorted(n.id for n in nodes)


def test_node_and_path_references(graph):
    """A node by id or by path: project, group, issue #iid, merge request !iid."""
    assert graph.node("issue:gitlab:100").props["title"] == "Crash on save"
    assert graph.node("gitlab:platform/api#1").id == "issue:gitlab:100"
    assert graph.node("gitlab:Platform/API").id == "project:gitlab:7"
    assert graph.node("gitlab:platform").id == "group:gitlab:1"
    assert graph.node("gitlab:platform/api!1").id == "merge_request:gitlab:500"
    with pytest.raises(UnknownNode, match="no issue 99 in project"):
        graph.node("gitlab:platform/api#99")
    with pytest.raises(UnknownNode, match="no node issue:gitlab:1"):
        graph.node("issue:gitlab:1")
    with pytest.raises(QueryError, match="ids are numbers"):
        graph.node("issue:gitlab:abc")


def test_neighbors_by_edge_type_and_direction(graph):
    """Edges at a node, filtered by type and direction, with edge properties on request."""
    closers = graph.neighbors("issue:gitlab:100", edges="CLOSES", direction="in")
    assert [(n.edge, n.direction, n.id) for n in closers] == [("CLOSES", "in", "merge_request:gitlab:500")]
    mentions = graph.neighbors("issue:gitlab:100", edges=["MENTIONS"], direction="in")
    assert [n.id for n in mentions] == ["comment:gitlab:9"]
    out = {(n.edge, n.id) for n in graph.neighbors("issue:gitlab:101", direction="out")}
    assert ("HAS_LABEL", "label:gitlab:2") in out and ("BLOCKS", "issue:gitlab:102") in out
    assert len(graph.neighbors("project:gitlab:7", direction="in", limit=3)) == 3
    with pytest.raises(QueryError, match="unknown edge type"):
        graph.neighbors("issue:gitlab:100", edges="FIXES")


def test_hops_and_shortest_path(graph):
    """k-hop neighbourhoods with distances; a shortest path through any edges."""
    one = graph.hops("issue:gitlab:100", 1)
    assert one["nodes"]["project:gitlab:7"] == 1 and one["nodes"]["comment:gitlab:9"] == 1
    two = graph.hops("issue:gitlab:100", 2, edges="BLOCKS", direction="out")
    assert two["nodes"] == {"issue:gitlab:101": 1, "issue:gitlab:102": 2}
    capped = graph.hops("project:gitlab:7", 3, max_nodes=4)
    assert capped["truncated"] and capped["count"] == 4
    path = graph.path("user:gitlab:1", "issue:gitlab:102")
    assert path is not None and len(path.steps) == 2
    assert path.as_dict()["steps"][0]["from"] == "user:gitlab:1"
    assert path.as_dict()["steps"][-1]["to"] == "issue:gitlab:102"
    directed = graph.path("issue:gitlab:100", "issue:gitlab:102", edges="BLOCKS", directed=True)
    assert [s["to"] for s in directed.as_dict()["steps"]] == ["issue:gitlab:101", "issue:gitlab:102"]
    assert graph.path("issue:gitlab:102", "issue:gitlab:100", edges="BLOCKS", directed=True) is None


def test_find_with_filters_and_pagination(graph):
    """find uses an index when the filters cover one, else scans; pages do not overlap."""
    first = graph.find("issue", {"project_id": 7, "state": "opened"}, limit=1)
    assert len(first.items) == 1 and first.next == first.items[0].id
    second = graph.find("issue", {"project_id": 7, "state": "opened"}, limit=1, after=first.next)
    assert ids(first.items + second.items) == ["issue:gitlab:100", "issue:gitlab:102"]
    assert second.next is None
    assert ids(graph.find("User", {"username": "bob"}).items) == ["user:gitlab:2"]
    assert ids(graph.find("Issue", {"title": "Typo"}).items) == ["issue:gitlab:102"]
    assert graph.find("Issue", {"title": "Typo"}, source="github").items == []
    with pytest.raises(QueryError, match="has no property 'colour'"):
        graph.find("Label", {"colour": "red"})


def test_counts(graph):
    """Counts by type, with the version and position they describe."""
    counts = graph.counts()
    assert counts["nodes"]["Issue"] == 3 and counts["nodes"]["User"] == 2
    assert counts["edges"]["BLOCKS"] == 2 and counts["version"] == 1 and counts["position"] == 15


def test_open_issues_of_a_project_with_a_label(graph):
    """Open issues, optionally with a label by name; closed ones are left out."""
    assert ids(questions.open_issues(graph, "gitlab:platform/api")) == ["issue:gitlab:100",
                                                                        "issue:gitlab:102"]
    assert ids(questions.open_issues(graph, "project:gitlab:7", label="bug")) == ["issue:gitlab:100"]
    assert questions.open_issues(graph, "project:gitlab:7", label="ux") == []
    with pytest.raises(UnknownNode, match="no label named 'nope'"):
        questions.open_issues(graph, "project:gitlab:7", label="nope")
    with pytest.raises(QueryError, match="not a project"):
        questions.open_issues(graph, "issue:gitlab:100")


def test_what_closed_an_issue(graph):
    """A merge request's description and a commit on the default branch close issues."""
    assert ids(questions.closed_by(graph, "gitlab:platform/api#1")) == ["merge_request:gitlab:500"]
    assert ids(questions.closed_by(graph, "issue:gitlab:101")) == ["commit:gitlab:" + "a" * 40]
    assert questions.closed_by(graph, "issue:gitlab:102") == []


def test_who_authored_what(graph):
    """Per-user counts for a project, and one user's items."""
    summary = questions.authored(graph, "project:gitlab:7")["authors"]
    assert summary == {"user:gitlab:1": {"Issue": 1, "MergeRequest": 1},
                       "user:gitlab:2": {"Issue": 2, "Commit": 1}}
    items = questions.authored(graph, "project:gitlab:7", user="user:gitlab:1")["items"]
    assert sorted(i["id"] for i in items) == ["comment:gitlab:9", "issue:gitlab:100",
                                             "merge_request:gitlab:500"]


def test_what_an_issue_blocks_transitively(graph):
    """BLOCKS edges followed breadth first, with distances."""
    assert [(b["id"], b["depth"]) for b in questions.blocks(graph, "issue:gitlab:100")] == [
        ("issue:gitlab:101", 1), ("issue:gitlab:102", 2)]
    assert [b["id"] for b in questions.blocks(graph, "issue:gitlab:100", transitive=False)] == [
        "issue:gitlab:101"]


def test_no_active_version_is_a_clear_error(tmp_path):
    """Before the first promotion a reader says what to run."""
    with pytest.raises(NoActiveVersion, match="fleet replay graph"):
        GraphReader(tmp_path).counts()


def test_projector_wakes_on_notify_and_on_polling(tmp_path):
    """New entries are applied after notify() even with slow polling, and by polling alone."""
    log_path, proj = tmp_path / "log.db", tmp_path / "proj"
    append(log_path, small_project())

    async def scenario(poll_ms: int, notify: bool, user_id: int):
        stop = asyncio.Event()
        projector = Projector(log_path, proj, ProjectorConfig(poll_interval_ms=poll_ms,
                                                              rebuild_workers=0))
        task = asyncio.create_task(projector.run(stop))
        try:
            await wait_for(lambda: projector.stats.version == 1 and projector.stats.lag == 0, timeout=30)
            append(log_path, [ev("user.created", user_id=user_id, username=f"u{user_id}")])
            if notify:
                projector.notify()
            with GraphReader(proj) as reader:
                def visible():
                    try:
                        return reader.node(f"user:gitlab:{user_id}")
                    except UnknownNode:
                        return None
                await wait_for(visible, timeout=5)
        finally:
            stop.set()
            stats = await task
        return stats

    notified = asyncio.run(scenario(poll_ms=60_000, notify=True, user_id=77))
    polled = asyncio.run(scenario(poll_ms=30, notify=False, user_id=78))
    assert notified.applied >= 1 and polled.applied >= 1
    assert Versions(proj).active() == 1


def test_simulated_workload_queries(tmp_path):
    """On a realistic log every question answers, and k-hop stays bounded."""
    simulated_log(tmp_path / "log.db", 5000, seed=2)
    rebuild(tmp_path / "log.db", tmp_path / "proj", workers=0)
    with GraphReader(tmp_path / "proj") as reader:
        page = reader.find("Project", {}, limit=3)
        assert page.items and page.next
        project = page.items[0].id
        assert isinstance(questions.open_issues(reader, project), list)
        assert questions.authored(reader, project)["authors"]
        hops = reader.hops(project, 3, max_nodes=2000)
        assert 0 < hops["count"] <= 2000
