"""Paged list answers: every item once and in order, totals, cursors refused when they are not."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.errors import QueryError
from projections.model.keys import format_key
from projections.model.ontology import NODE_TYPES
from projections.read import questions
from projections.read.paging import decode_cursor, encode_cursor, fingerprint
from projections.read.reader import GraphReader
from projections.versions.rebuild import rebuild
from tests.support.cli import fleet
from tests.support.projection import simulated_log
from workers.projector.loop import Projector, ProjectorConfig


@pytest.fixture(scope="module")
def graph(tmp_path_factory):
    """A projection of 4,000 simulated events, its reader, and the busiest nodes first."""
    root = tmp_path_factory.mktemp("paging")
    simulated_log(root / "log.db", 4000, seed=11)
    rebuild(root / "log.db", root / "projections")  # the data dir's layout: the CLI reads it too
    with GraphReader(root / "projections") as reader:
        with reader.snapshot() as snap:
            keys = [k for t in NODE_TYPES for k in snap.type_scan(t.code)]
            degree = snap.degree("both")
            busiest = sorted(keys, key=lambda k: -degree(k))[:40]
        yield reader, [format_key(k) for k in busiest]


def _all_pages(fetch, limit):
    """Every page of a query, following ``next``; checks the page invariants on the way."""
    pages, after = [], None
    while True:
        page = fetch(limit=limit, after=after)
        pages.append(page)
        assert len(page.items) <= limit
        assert page.truncated == (page.next is not None)
        if not page.truncated:
            return pages
        assert len(page.items) == limit
        after = page.next
        assert len(pages) < 10_000


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 39), st.integers(1, 60), st.sampled_from(["both", "in", "out"]),
       st.sampled_from([None, "IN_PROJECT", ["AUTHORED", "MENTIONS"]]))
def test_neighbor_pages_yield_every_edge_once_in_order(graph, which, limit, direction, edges):
    """Paging through a node's edges yields exactly its whole answer, in order; the total is exact."""
    reader, busiest = graph
    node = busiest[which]
    whole = reader.neighbors(node, direction=direction, edges=edges, limit=1_000_000)
    pages = _all_pages(lambda **kw: reader.neighbor_page(node, direction=direction, edges=edges, **kw),
                       limit)
    seen = [(n.edge, n.direction, n.id) for p in pages for n in p.items]
    assert seen == [(n.edge, n.direction, n.id) for n in whole]
    assert len(set(seen)) == len(seen)
    assert all(p.total == len(whole) and not p.total_is_lower_bound for p in pages)
    assert pages[-1].truncated is False and pages[-1].next is None


@pytest.mark.parametrize("type_name, filters", [
    ("Issue", {}),                   # the type's table counts itself
    ("Issue", {"state": "opened"}),  # an exact index entry: counted by LMDB
    ("Issue", {"confidential": False, "state": "opened"}),  # the index, then re-checked: counted
    ("Issue", {"confidential": False}),  # a scan: counted
    ("Comment", {}),
    ("User", {}),
])
@pytest.mark.parametrize("limit", [1, 7, 250])
def test_find_pages_yield_every_node_once_in_key_order(graph, type_name, filters, limit):
    """find's pages cover the type's matching nodes once each, in key order, with their total."""
    reader, _ = graph
    pages = _all_pages(lambda **kw: reader.find(type_name, filters, **kw), limit)
    seen = [n.id for p in pages for n in p.items]
    with reader.snapshot() as snap:
        code = next(t.code for t in NODE_TYPES if t.name == type_name)
        expected = [format_key(k) for k in snap.type_scan(code)
                    if all(snap.props(k).get(f) == v for f, v in filters.items())]
    assert seen == expected and len(pages) == -(-len(expected) // limit)
    assert {(p.total, p.total_is_lower_bound) for p in pages} == {(len(expected), False)}


def test_find_with_an_index_counts_the_entry_and_a_scan_stops_at_the_bound(graph):
    """An exact index entry is counted whole; a scan past count_max says "at least"."""
    reader, _ = graph
    project = reader.find("Project", {}, limit=1).items[0]
    pid = project.props["id"] if "id" in project.props else int(project.id.rsplit(":", 1)[1])
    page = reader.find("Issue", {"project_id": pid, "state": "opened"}, limit=2)
    opened = questions.open_issues_page(reader, project.id, limit=2)
    assert (page.total, page.total_is_lower_bound) == (opened.total, False)
    capped = reader.find("Issue", {"confidential": False}, limit=1, count_max=3)
    assert (capped.total, capped.total_is_lower_bound) == (3, True) and capped.truncated


def test_question_pages_cover_their_whole_answers(graph):
    """open-issues (with and without a label), closed-by and authored page like neighbours."""
    reader, busiest = graph
    projects = reader.find("Project", {}, limit=100).items
    project = max(projects, key=lambda p: len(questions.open_issues(reader, p.id, limit=100_000)))
    whole = questions.open_issues(reader, project.id, limit=100_000)
    assert len(whole) > 3
    pages = _all_pages(lambda **kw: questions.open_issues_page(reader, project.id, **kw), 2)
    assert [n.id for p in pages for n in p.items] == [n.id for n in whole]
    assert pages[0].total == len(whole) and not pages[0].total_is_lower_bound
    labels = reader.find("Label", {}, limit=500).items
    label = next(lb for lb in labels if lb.props.get("project_id") == int(project.id.rsplit(":", 1)[1])
                 and questions.open_issues(reader, project.id, label=lb.id, limit=100))
    labelled = questions.open_issues(reader, project.id, label=label.id, limit=100_000)
    pages = _all_pages(lambda **kw: questions.open_issues_page(reader, project.id, label=label.id, **kw), 1)
    assert [n.id for p in pages for n in p.items] == [n.id for n in labelled]
    assert pages[0].total == len(labelled)
    user = next(n for n in busiest if n.startswith("user:"))
    whole_user = questions.authored(reader, project.id, user=user, limit=100_000)
    assert whole_user["truncated"] is False and whole_user["total"] == len(whole_user["items"])
    collected, after = [], None
    while True:
        part = questions.authored(reader, project.id, user=user, limit=3, after=after)
        collected += part["items"]
        if not part["truncated"]:
            break
        after = part["next"]
    assert collected == whole_user["items"]


def test_bad_cursors_are_refused_with_a_clear_error(graph):
    """Garbage, a cut-off cursor, another query's or another kind's cursor: QueryError naming `next`."""
    reader, busiest = graph
    a, b = busiest[0], busiest[1]
    first = reader.neighbor_page(a, limit=1)
    assert first.truncated
    flipped = first.next[:-3] + ("A" if first.next[-3] != "A" else "B") + first.next[-2:]
    bad = ["not a cursor!", "%%%", "A" * 5000, "AQ", first.next[:3], first.next[:-2], flipped,
           reader.neighbor_page(b, limit=1).next,
           reader.find("Issue", {}, limit=1).next]
    for cursor in bad:
        with pytest.raises(QueryError, match="cursor"):
            reader.neighbor_page(a, limit=1, after=cursor)
    with pytest.raises(QueryError, match="another query"):
        reader.neighbor_page(a, direction="in", limit=1, after=first.next)
    with pytest.raises(QueryError, match="cursor"):
        reader.find("Issue", {"state": "opened"}, limit=1, after=reader.find("Issue", {}, limit=1).next)
    assert reader.neighbor_page(a, limit=1, after="").items == first.items  # empty: the first page
    query = fingerprint(b"x")
    assert decode_cursor(encode_cursor(3, query, b"\x00\xff"), 3, query) == b"\x00\xff"


@pytest.mark.parametrize("limit", [0, -1, 10**9, True])
def test_page_sizes_out_of_range_are_refused(graph, limit):
    """A page holds 1..100,000 items; anything else is a QueryError before any read."""
    reader, busiest = graph
    for call in (lambda: reader.neighbor_page(busiest[0], limit=limit),
                 lambda: reader.find("Issue", {}, limit=limit),
                 lambda: questions.open_issues_page(reader, reader.find("Project", {}, limit=1).items[0].id,
                                                    limit=limit)):
        with pytest.raises(QueryError, match="out of range 1..100000"):
            call()


def test_pages_across_graph_changes_repeat_nothing(tmp_path):
    """Between pages the graph grows: no item is repeated, and every item there before and
    after is seen once (README "Pagination")."""
    log_path, proj = tmp_path / "log.db", tmp_path / "proj"
    simulated_log(log_path, 1500, seed=4)
    rebuild(log_path, proj)
    with GraphReader(proj) as reader:
        before = {n.id for n in reader.find("Issue", {}, limit=100_000).items}
        first = reader.find("Issue", {}, limit=40)
        simulated_log(log_path, 3000, seed=4, start=1500)
        stats = asyncio.run(Projector(log_path, proj, ProjectorConfig(poll_interval_ms=50)).run(
            asyncio.Event(), until_caught_up=True))
        assert stats.lag == 0
        after = {n.id for n in reader.find("Issue", {}, limit=100_000).items}
        assert after - before, "the second half of the workload adds issues"
        seen = [n.id for n in first.items]
        cursor = first.next
        while cursor:
            page = reader.find("Issue", {}, limit=40, after=cursor)
            seen += [n.id for n in page.items]
            cursor = page.next
    assert len(seen) == len(set(seen))
    assert (before & after) <= set(seen)


def test_fleet_query_says_how_much_it_shows_and_pages_with_after(graph, monkeypatch, capsys):
    """"showing N of M (--limit, --after CURSOR)"; following the cursors prints every edge once;
    a bad cursor or limit exits 2 naming it."""
    reader, busiest = graph
    node = busiest[0]
    total = len(reader.neighbors(node, limit=1_000_000))
    data_dir = reader.versions.path(reader.version).parent.parent.parent
    q = ("--data-dir", str(data_dir), "query")
    seen, after = [], None
    while True:
        code, out, err = fleet(monkeypatch, capsys, *q, "neighbors", node, "-n", "25",
                               *(("--after", after) if after else ()))
        assert code == 0, err
        lines = out.splitlines()
        seen += lines[:-1]
        if "--after" not in lines[-1]:
            assert lines[-1] == (f"showing {len(lines) - 1} of {total} edges (last page)"
                                 if after else f"{total} edges")
            break
        assert lines[-1].startswith(f"showing 25 of {total} edges (--limit, --after ")
        after = lines[-1].rsplit(" ", 1)[1].rstrip(")")
    assert len(seen) == total == len(set(seen)) > 25
    code, out, _ = fleet(monkeypatch, capsys, *q, "neighbors", node, "-n", "5", "--json")
    page = json.loads(out)
    assert code == 0 and page["total"] == total and page["truncated"] and page["next"]
    project = next(n for n in busiest if n.startswith("project:"))
    opened = questions.open_issues_page(reader, project, limit=1)
    code, out, _ = fleet(monkeypatch, capsys, *q, "open-issues", project, "-n", "1")
    assert code == 0 and out.splitlines()[-1] == (
        f"showing 1 of {opened.total} open issues (--limit, --after {opened.next})")
    code, _, err = fleet(monkeypatch, capsys, *q, "neighbors", node, "--after", "garbage!")
    assert code == 2 and "not a cursor" in err
    for bad in ("0", "-1", "1000001"):
        code, _, err = fleet(monkeypatch, capsys, *q, "neighbors", node, "-n", bad)
        assert code == 2 and "--limit" in err
