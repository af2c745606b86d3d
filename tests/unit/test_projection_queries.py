"""Queries over the active version: nodes, neighbours, hops, paths, find, and real questions."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import threading
import time
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from projections.errors import NoActiveVersion, QueryError, UnknownNode
from projections.model.keys import format_key, parse_key
from projections.model.ontology import NODE_TYPES
from projections.model.ontology import VERSION as V
from projections.read import questions, snapshot, traverse
from projections.read.reader import GraphReader
from projections.versions import pointer
from projections.versions.catalog import Versions
from projections.versions.rebuild import rebuild
from tests.support.cli import fleet
from tests.support.projection import append, ev, simulated_log, small_project
from tests.support.wait import wait_until
from workers.projector.loop import Projector, ProjectorConfig


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    root = tmp_path_factory.mktemp("queries")
    append(root / "log.db", small_project())
    rebuild(root / "log.db", root / "proj")
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
    assert path.found and path.length == 2 and not path.truncated
    assert path.as_dict()["steps"][0]["from"] == "user:gitlab:1"
    assert path.as_dict()["steps"][-1]["to"] == "issue:gitlab:102"
    directed = graph.path("issue:gitlab:100", "issue:gitlab:102", edges="BLOCKS", directed=True)
    assert [s["to"] for s in directed.as_dict()["steps"]] == ["issue:gitlab:101", "issue:gitlab:102"]
    none = graph.path("issue:gitlab:102", "issue:gitlab:100", edges="BLOCKS", directed=True)
    assert not none.found and not none.truncated
    assert none.as_dict() == {"length": None, "steps": None, "truncated": False, "visited": 2}


def test_find_with_filters_and_pagination(graph):
    """find uses an index when the filters cover one, else scans; pages do not overlap."""
    first = graph.find("issue", {"project_id": 7, "state": "opened"}, limit=1)
    assert len(first.items) == 1 and first.truncated and first.next and ":" not in first.next
    assert (first.total, first.total_is_lower_bound) == (2, False)
    second = graph.find("issue", {"project_id": 7, "state": "opened"}, limit=1, after=first.next)
    assert ids(first.items + second.items) == ["issue:gitlab:100", "issue:gitlab:102"]
    assert second.next is None and not second.truncated and second.total == 2
    by_id = graph.find("issue", {"project_id": 7, "state": "opened"}, limit=1, after=first.items[0].id)
    assert ids(by_id.items) == ["issue:gitlab:102"]  # a node id as `after`, as before cursors
    assert ids(graph.find("User", {"username": "bob"}).items) == ["user:gitlab:2"]
    assert ids(graph.find("Issue", {"title": "Typo"}).items) == ["issue:gitlab:102"]
    assert graph.find("Issue", {"title": "Typo"}, source="github").items == []
    with pytest.raises(QueryError, match="has no property 'colour'"):
        graph.find("Label", {"colour": "red"})


def test_counts(graph):
    """Counts by type, with the version and position they describe."""
    counts = graph.counts()
    assert counts["nodes"]["Issue"] == 3 and counts["nodes"]["User"] == 2
    assert counts["edges"]["BLOCKS"] == 2 and counts["version"] == V and counts["position"] == 15


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
    assert ids(questions.closed_by(graph, "gitlab:platform/api#1").items) == ["merge_request:gitlab:500"]
    assert ids(questions.closed_by(graph, "issue:gitlab:101").items) == ["commit:gitlab:" + "a" * 40]
    none = questions.closed_by(graph, "issue:gitlab:102")
    assert (none.items, none.total, none.truncated, none.next) == ([], 0, False, None)


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
        projector = Projector(log_path, proj, ProjectorConfig(poll_interval_ms=poll_ms))
        task = asyncio.create_task(projector.run(stop))
        try:
            await wait_until(lambda: projector.stats.version == V and projector.stats.lag == 0,
                             timeout_secs=30)
            append(log_path, [ev("user.created", user_id=user_id, username=f"u{user_id}")])
            if notify:
                projector.notify()
            with GraphReader(proj) as reader:
                def visible():
                    try:
                        return reader.node(f"user:gitlab:{user_id}")
                    except UnknownNode:
                        return None
                await wait_until(visible, timeout_secs=5)
        finally:
            stop.set()
            stats = await task
        return stats

    notified = asyncio.run(scenario(poll_ms=60_000, notify=True, user_id=77))
    polled = asyncio.run(scenario(poll_ms=30, notify=False, user_id=78))
    assert notified.applied >= 1 and polled.applied >= 1
    assert Versions(proj).active() == V


def test_simulated_workload_queries(tmp_path):
    """On a realistic log every question answers, and k-hop stays bounded."""
    simulated_log(tmp_path / "log.db", 5000, seed=2)
    rebuild(tmp_path / "log.db", tmp_path / "proj")
    with GraphReader(tmp_path / "proj") as reader:
        page = reader.find("Project", {}, limit=3)
        assert page.items and page.next
        project = page.items[0].id
        assert isinstance(questions.open_issues(reader, project), list)
        assert questions.authored(reader, project)["authors"]
        hops = reader.hops(project, 3, max_nodes=2000)
        assert 0 < hops["count"] <= 2000


# --- shortest paths: truncated, none, and the same length as a plain BFS -------------------


def test_path_says_truncated_apart_from_no_path(graph):
    """A search stopped by max_nodes says truncated; a missing path says none, not truncated."""
    blocks = {"edges": "BLOCKS", "directed": True}
    found = graph.path("issue:gitlab:100", "issue:gitlab:102", **blocks)
    assert found.length == 2 and not found.truncated
    cut = graph.path("issue:gitlab:100", "issue:gitlab:102", **blocks, max_nodes=2)
    assert not cut.found and cut.truncated and cut.visited > 2
    assert cut.as_dict() == {"length": None, "steps": None, "truncated": True, "visited": cut.visited}
    shallow = graph.path("issue:gitlab:100", "issue:gitlab:102", **blocks, max_depth=1)
    assert not shallow.found and not shallow.truncated
    unlinked = graph.path("issue:gitlab:100", "user:gitlab:1", edges="BLOCKS")
    assert not unlinked.found and not unlinked.truncated
    assert graph.path("issue:gitlab:100", "issue:gitlab:100").as_dict()["length"] == 0
    with pytest.raises(QueryError, match="max_nodes must be at least 1"):
        graph.path("issue:gitlab:100", "issue:gitlab:102", max_nodes=0)


def _bfs_distance(graph: dict, src, dst, *, directed: bool) -> int | None:
    """Reference: plain breadth-first search from ``src``."""
    adjacent = {n: set(out) for n, out in graph.items()}
    if not directed:
        for n, out in graph.items():
            for o in out:
                adjacent.setdefault(o, set()).add(n)
    seen, queue = {src: 0}, deque([src])
    while queue:
        node = queue.popleft()
        if node == dst:
            return seen[node]
        for other in sorted(adjacent.get(node, ())):
            if other not in seen:
                seen[other] = seen[node] + 1
                queue.append(other)
    return None


def _search(graph: dict, src, dst, *, directed: bool, weighed: bool = False, **bounds):
    """shortest_path over a dict graph; (result, the adjacency it walked)."""
    out = {n: list(o) for n, o in graph.items()}
    inn: dict = {}
    for n, others in graph.items():
        for o in others:
            inn.setdefault(o, []).append(n)
    both = {n: out.get(n, []) + inn.get(n, []) for n in set(out) | set(inn)}
    ahead, behind = (out, inn) if directed else (both, both)
    degrees = (lambda n: len(ahead.get(n, ())), lambda n: len(behind.get(n, ())))
    found = traverse.shortest_path(src, dst, lambda n: ahead.get(n, ()), lambda n: behind.get(n, ()),
                          degrees=degrees if weighed else None, **bounds)
    return found, ahead


_graphs = st.dictionaries(st.integers(0, 30), st.lists(st.integers(0, 30), max_size=6), max_size=31)


@settings(max_examples=300, deadline=None)
@given(graph=_graphs, src=st.integers(0, 30), dst=st.integers(0, 30), directed=st.booleans(),
       weighed=st.booleans(), max_depth=st.integers(0, 8))
def test_bidirectional_search_matches_plain_bfs(graph, src, dst, directed, weighed, max_depth):
    """The bidirectional search (weighed by degrees or not) finds a path exactly when BFS does
    within max_depth, of the BFS length, along real edges."""
    found, adjacent = _search(graph, src, dst, directed=directed, weighed=weighed, max_depth=max_depth)
    expected = _bfs_distance(graph, src, dst, directed=directed)
    assert not found.truncated
    if expected is None or expected > max_depth:
        assert found.nodes is None
        return
    assert found.nodes is not None and len(found.nodes) - 1 == expected
    assert found.nodes[0] == src and found.nodes[-1] == dst
    assert all(b in adjacent.get(a, ()) for a, b in zip(found.nodes, found.nodes[1:]))


def test_search_bounds_are_reported():
    """A long chain: a small max_nodes truncates, a large one finds it, hops say truncated too."""
    chain = {i: [i + 1] for i in range(100)}
    cut, _ = _search(chain, 0, 100, directed=True, max_depth=200, max_nodes=50)
    assert cut.nodes is None and cut.truncated and cut.visited > 50
    whole, _ = _search(chain, 0, 100, directed=True, max_depth=200, max_nodes=1000)
    assert len(whole.nodes) == 101 and not whole.truncated
    star = {0: list(range(1, 2001))}
    assert traverse.hops(0, 1, lambda n: star.get(n, ()), max_nodes=2000).truncated is False
    capped = traverse.hops(0, 1, lambda n: star.get(n, ()), max_nodes=1999)
    assert capped.truncated and len(capped.nodes) == 1999


@pytest.fixture(scope="module")
def simulated_graph(tmp_path_factory):
    """A projection of 3,000 simulated events (read-only for the tests) and all its node keys."""
    root = tmp_path_factory.mktemp("simulated")
    simulated_log(root / "log.db", 3000, seed=7)
    rebuild(root / "log.db", root / "proj")
    with GraphReader(root / "proj") as reader, reader.snapshot() as snap:
        keys = [k for t in NODE_TYPES for k in snap.type_scan(t.code)]
    return root / "proj", keys


def test_reader_paths_match_plain_bfs_on_a_simulated_graph(simulated_graph):
    """On a realistic graph, path lengths equal a plain BFS's over the same edges (a seeded sweep)."""
    proj, keys = simulated_graph
    with GraphReader(proj) as reader:
        with reader.snapshot() as snap:
            expand = snap.expander("out")
            graph = {k: list(expand(k)) for k in keys}
        rng = random.Random(3)
        for i, (src, dst) in enumerate(rng.sample(keys, 2) for _ in range(80)):
            directed = i % 4 == 0
            expected = _bfs_distance(graph, src, dst, directed=directed)
            found = reader.path(format_key(src), format_key(dst), directed=directed, max_depth=20)
            assert found.length == expected
            if found.steps:
                assert found.steps[0].source == format_key(src)
                assert found.steps[-1].target == format_key(dst)
                assert all(a.target == b.source for a, b in zip(found.steps, found.steps[1:]))


def test_fleet_query_path_reports_truncation(monkeypatch, capsys, tmp_path):
    """`fleet query path` says truncated (text and --json) and exits 1, apart from no path."""
    append(tmp_path / "log.db", small_project())
    rebuild(tmp_path / "log.db", tmp_path / "projections")
    q = ("--data-dir", str(tmp_path), "query", "path")
    pair = ("issue:gitlab:100", "issue:gitlab:102", "-e", "BLOCKS", "--directed")
    code, out, _ = fleet(monkeypatch, capsys, *q, *pair, "--max-nodes", "2")
    assert code == 1 and "truncated after visiting" in out and "--max-nodes 2" in out
    code, out, _ = fleet(monkeypatch, capsys, *q, *pair, "--max-nodes", "2", "--json")
    assert code == 1 and json.loads(out)["truncated"] is True and json.loads(out)["length"] is None
    code, out, _ = fleet(monkeypatch, capsys, *q, "issue:gitlab:102", "issue:gitlab:100", "-e", "BLOCKS",
                       "--directed", "--json")
    assert code == 1 and json.loads(out)["truncated"] is False
    code, out, _ = fleet(monkeypatch, capsys, *q, *pair, "--json")
    assert code == 0 and json.loads(out)["length"] == 2


# --- the ACTIVE pointer: re-checked cheaply, followed at once --------------------------------


@pytest.fixture
def two_versions(tmp_path):
    """v1 without user 9100, v2 (active) with it."""
    log_path, proj = tmp_path / "log.db", tmp_path / "proj"
    append(log_path, small_project())
    rebuild(log_path, proj)
    append(log_path, [ev("user.created", user_id=9100, username="late")])
    rebuild(log_path, proj, version=V + 1)
    return proj


def _sees_late_user(reader: GraphReader) -> bool:
    try:
        return reader.node("user:gitlab:9100").props["username"] == "late"
    except UnknownNode:
        return False


def test_reader_follows_promotion_and_rollback_at_once(two_versions, caplog):
    """Each switch of ACTIVE shows on the very next query, even with an unchanged mtime,
    and is logged once by the reader."""
    caplog.set_level("INFO", logger="projections.read.reader")
    versions = Versions(two_versions)
    active = two_versions / "graph" / "ACTIVE"
    with GraphReader(two_versions) as reader, GraphReader(two_versions, version=V) as pinned:
        assert reader.version == V + 1 and _sees_late_user(reader)
        for _ in range(3):
            stamp = os.stat(active).st_mtime_ns
            versions.rollback()
            # Coarse file timestamps: the new pointer may carry the old one's mtime.
            os.utime(active, ns=(stamp, stamp))
            assert reader.version == V and not _sees_late_user(reader)
            versions.promote(V + 1)
            assert reader.version == V + 1 and _sees_late_user(reader)
        assert pinned.version == V and not _sees_late_user(pinned)
    switches = [(r.previous, r.version) for r in caplog.records
                if r.getMessage() == "queries follow the active version"]
    assert switches == [(V + 1, V), (V, V + 1)] * 3


def _replace_by_hand(active, version: int) -> None:
    """Switch ACTIVE as a process that died before writing the stamp would have."""
    tmp = active.with_name("ACTIVE.by-hand")
    tmp.write_text(f"v{version}\n")
    os.replace(tmp, active)


@pytest.mark.parametrize("how", ["rewritten in place", "replaced"])
def test_a_pointer_switched_without_the_stamp_is_followed_within_the_recheck(
        two_versions, monkeypatch, how):
    """ACTIVE changed without ACTIVE.stamp (by hand, or by a process that died between the
    switch and the stamp) is followed once the reader checks the file itself."""
    monkeypatch.setattr(pointer, "POINTER_RECHECK_NS", 50_000_000)
    active = two_versions / "graph" / "ACTIVE"
    with GraphReader(two_versions) as reader:
        assert reader.version == V + 1
        if how == "replaced":
            _replace_by_hand(active, V)
        else:
            stamp = os.stat(active).st_mtime_ns
            with open(active, "r+") as f:
                f.write(f"v{V}\n")
            os.utime(active, ns=(stamp + 1_000_000, stamp + 1_000_000))
        time.sleep(0.06)
        assert reader.version == V and not _sees_late_user(reader)


def test_steady_queries_read_the_stamp_not_the_pointer_file(two_versions, monkeypatch):
    """While nothing switches, a query makes no system call to check ACTIVE; a switch
    through Versions still shows on the very next query."""
    calls = []
    real_fstat = os.fstat
    versions = Versions(two_versions)
    with GraphReader(two_versions) as reader:
        assert _sees_late_user(reader)
        monkeypatch.setattr(os, "fstat", lambda fd: calls.append(fd) or real_fstat(fd))
        for _ in range(200):
            assert _sees_late_user(reader)
        assert calls == []
        versions.rollback()
        assert not _sees_late_user(reader)


@pytest.mark.parametrize("stamp", ["missing", "short"])
def test_without_a_usable_stamp_the_reader_checks_the_pointer_at_every_query(two_versions, stamp):
    """A projections folder from before the stamp (or with a damaged one): every switch,
    even one made without the stamp, shows on the very next query, as before."""
    root = two_versions / "graph"
    (root / "ACTIVE.stamp").unlink()
    if stamp == "short":
        (root / "ACTIVE.stamp").write_bytes(b"v1")
    with GraphReader(two_versions) as reader:
        assert reader.version == V + 1
        _replace_by_hand(root / "ACTIVE", V)
        assert reader.version == V and not _sees_late_user(reader)
        _replace_by_hand(root / "ACTIVE", V + 1)
        assert reader.version == V + 1 and _sees_late_user(reader)


def test_a_stamp_that_cannot_be_written_fails_no_switch(two_versions, caplog):
    """ACTIVE.stamp unwritable (here a folder in its place): rollback and promotion still
    switch, say why readers may lag, and readers (which cannot map it) follow at once."""
    root = two_versions / "graph"
    (root / "ACTIVE.stamp").unlink()
    (root / "ACTIVE.stamp").mkdir()
    versions = Versions(two_versions)
    with GraphReader(two_versions) as reader:
        assert _sees_late_user(reader)
        assert versions.rollback() == (V + 1, V)
        assert not _sees_late_user(reader)
        assert versions.promote(V + 1) == V
        assert _sees_late_user(reader)
    assert versions.info(V).state == "retired"
    assert "queries follow the switch of ACTIVE within a second" in caplog.text


def test_threads_share_a_reader_across_switches(two_versions):
    """Queries from several threads during promotions and rollbacks each see one whole version."""
    versions = Versions(two_versions)
    user = parse_key("user:gitlab:9100")
    errors: list[Exception] = []
    seen: set[tuple[int, bool]] = set()
    done = threading.Event()

    def ask(reader: GraphReader) -> None:
        try:
            while not done.is_set():
                with reader.snapshot() as snap:
                    seen.add((snap.version, snap.exists(user)))
        except Exception as e:  # reported by the assertion below
            errors.append(e)

    with GraphReader(two_versions) as reader:
        threads = [threading.Thread(target=ask, args=(reader,)) for _ in range(3)]
        for t in threads:
            t.start()
        for _ in range(10):
            versions.rollback()
            versions.promote(V + 1)
        done.set()
        for t in threads:
            t.join(10)
    assert not errors
    assert seen <= {(V, False), (V + 1, True)} and (V + 1, True) in seen


@contextlib.contextmanager
def _level_reads_always():
    """Read every frontier a level at a time, whatever its size and the room left."""
    saved = traverse._LEVEL_FRONTIER, traverse._LEVEL_ROOM
    traverse._LEVEL_FRONTIER, traverse._LEVEL_ROOM = 1, 0
    try:
        yield
    finally:
        traverse._LEVEL_FRONTIER, traverse._LEVEL_ROOM = saved


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.integers(0, 80), st.lists(st.integers(0, 80), max_size=12), max_size=60),
       st.integers(0, 80), st.integers(1, 4), st.integers(1, 120))
def test_hops_a_level_at_a_time_finds_what_node_by_node_does(adjacent, start, depth, max_nodes):
    """Same nodes and distances, and under truncation the very same nodes, with or without
    ``expand_level`` (forced on for every frontier here)."""
    expand = lambda n: adjacent.get(n, ())  # noqa: E731
    def level(nodes, budget):
        out = [o for n in sorted(nodes) for o in adjacent.get(n, ())]
        return out if len(out) <= budget else None

    plain = traverse.hops(start, depth, expand, max_nodes=max_nodes)
    with _level_reads_always():
        wide = traverse.hops(start, depth, expand, max_nodes=max_nodes, expand_level=level)
    assert wide.nodes == plain.nodes and wide.truncated == plain.truncated


def test_level_reads_walk_or_probe_a_table_alike(simulated_graph, monkeypatch):
    """A level read gives the same neighbours, in the same order, whether it walks each
    table or looks every key up in it; and what node-by-node reads give, as a multiset."""
    proj, keys = simulated_graph
    with GraphReader(proj) as reader, reader.snapshot() as snap:
        for direction in ("both", "out", "in"):
            expand, level = snap.expander(direction), snap.level_expander(direction)
            for n in (1, 10, 300, len(keys)):
                frontier = random.Random(n).sample(keys, n)
                answers = []
                for walk_below in (0, snapshot._WALK_BELOW, 10**9):  # probe, as shipped, walk
                    monkeypatch.setattr(snapshot, "_WALK_BELOW", walk_below)
                    answers.append(level(frontier, 10**9))
                    if answers[-1]:
                        assert level(frontier, len(answers[-1]) - 1) is None
                assert answers[0] == answers[1] == answers[2]
                assert sorted(answers[0]) == sorted(o for k in frontier for o in expand(k))


def test_reader_hops_match_node_by_node_on_a_simulated_graph(simulated_graph):
    """The reader's level expansion (a cursor walk per edge table) returns what per-node reads do."""
    proj, keys = simulated_graph
    with GraphReader(proj) as reader, _level_reads_always():
        with reader.snapshot() as snap:
            for direction in ("both", "out", "in"):
                expand = snap.expander(direction)
                for key in random.Random(direction).sample(keys, 15):
                    for max_nodes in (50, 10**6):
                        want = traverse.hops(key, 3, expand, max_nodes=max_nodes)
                        got = reader.hops(format_key(key), 3, direction=direction, max_nodes=max_nodes)
                        assert got["truncated"] == want.truncated
                        assert got["nodes"] == {format_key(k): d for k, d in want.nodes.items()}


def test_format_keys_formats_every_kind_of_key_as_format_key_does(simulated_graph):
    from projections.model.keys import format_keys

    _, keys = simulated_graph
    kinds = {t.id_kind for t in NODE_TYPES if any(k[0] == t.code for k in keys)}
    assert {"int", "sha", "ref"} <= kinds
    assert format_keys(keys) == [format_key(k) for k in keys]


def test_format_key_formats_alike_before_and_after_it_knows_a_head(simulated_graph, monkeypatch):
    """format_key's short path for a numeric id of a known type:source gives what the long
    path gives, for every key of a simulated graph (and refs and commits are left alone)."""
    from projections.model import keys as keys_module

    _, keys = simulated_graph
    monkeypatch.setattr(keys_module, "_INT_TEXT", {})
    monkeypatch.setattr(keys_module, "_MAX_HEADS", 0)  # the long path only
    format_key.cache_clear()
    long_path = [format_key(k) for k in keys]
    assert not keys_module._INT_TEXT
    monkeypatch.setattr(keys_module, "_MAX_HEADS", 4096)
    for _ in range(2):  # the first pass teaches it the heads, the second uses them
        format_key.cache_clear()
        assert [format_key(k) for k in keys] == long_path
    assert keys_module._INT_TEXT and {t.split(":")[0] for t in long_path} >= {"ref", "commit"}
    format_key.cache_clear()


def _spellings(text: str) -> list[str]:
    """Other ways to write a node id that name the same node."""
    tag, source, local = text.split(":", 2)
    out = [text, f"{tag.upper()}:{source}:{local}"]
    if local.isdigit():
        out.append(f"{tag}:{source}:000{local}")
    elif tag == "commit":
        out.append(f"{tag}:{source}:{local.upper()}")
    return out


def test_node_lookups_by_id_answer_as_the_snapshot_does(simulated_graph):
    """Every kind of id, in every spelling, first and repeated (the id parser remembers
    ``type:source`` heads): the node's canonical id, type and properties."""
    proj, keys = simulated_graph
    with GraphReader(proj) as reader:
        for key in random.Random(3).sample(keys, 300):
            with reader.snapshot() as snap:
                want = snap.node(key)
            for text in _spellings(format_key(key)) * 2:
                assert reader.node(text) == want, text


def test_ids_parse_alike_the_first_time_and_after(monkeypatch):
    from projections.model import keys
    from projections.model.keys import known_id, parse_id

    monkeypatch.setattr(keys, "_HEADS", {})
    assert known_id("issue:gitlab:7") is None
    texts = ["issue:gitlab:7", "Issue:gitlab:0007", "merge_request:github:12", "mr:github:12",
             "commit:gitlab:ABCdef0123", "ref:gitlab:7:branch:main", "user:other:18446744073709551615"]
    first = [parse_id(t) for t in texts]
    assert first == [(parse_key(t), format_key(parse_key(t))) for t in texts]
    assert [parse_id(t) for t in texts] == first
    assert known_id("issue:gitlab:7") == first[0] and known_id("ref:gitlab:7:branch:main") is None


@pytest.mark.parametrize("text, error", [
    ("issue:gitlab:²", "ids are numbers"),  # isdigit, but int() refuses it
    ("issue:gitlab:18446744073709551616", r"below 2\*\*64"),
    ("issue:gitlab:99999999999999999999999999", r"below 2\*\*64"),
    ("issue:gitlab:", "not of the form"),
    ("commit:gitlab:", "not of the form"),
    ("issue:gitlab:1:2", "ids are numbers"),
])
def test_malformed_ids_get_a_query_error_before_and_after_the_head_is_known(
        graph, monkeypatch, text, error):
    from projections.model import keys

    monkeypatch.setattr(keys, "_HEADS", {})
    with pytest.raises(QueryError, match=error):
        graph.node(text)
    parse_key("issue:gitlab:1")
    parse_key("commit:gitlab:abc")
    assert set(keys._HEADS) == {"issue:gitlab", "commit:gitlab"}
    with pytest.raises(QueryError, match=error):
        graph.node(text)


def test_unknown_ids_name_the_node_on_the_short_path(graph):
    for text in ("issue:gitlab:424242", "commit:gitlab:" + "e" * 40):
        for _ in range(2):
            with pytest.raises(UnknownNode, match=f"no node {text} in the graph"):
                graph.node(text)
