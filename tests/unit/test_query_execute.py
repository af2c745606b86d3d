"""The query language over a real graph: the same answers as the GraphReader's own calls,
budgets, cursors, the saved questions and the examples under examples/queries/."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from projections.errors import UnknownNode
from projections.model.keys import format_key
from projections.model.ontology import EDGE_TYPES, NODE_TYPES
from projections.read.query import budget as budget_module
from projections.read.query import saved
from projections.read.query.execute import run_query
from projections.read.query.schema import InvalidQuery
from projections.read import questions
from projections.read.reader import GraphReader
from projections.versions.rebuild import rebuild
from tests.support.projection import append, simulated_log, small_project

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "queries"
EDGE_NAMES = [e.name for e in EDGE_TYPES]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A graph of 5,000 simulated events (seed 0: source `simulate`, as the examples expect)."""
    root = tmp_path_factory.mktemp("query-sim")
    simulated_log(root / "log.db", 5000, seed=0)
    rebuild(root / "log.db", root / "proj")
    with GraphReader(root / "proj") as reader:
        yield reader


@pytest.fixture(scope="module")
def ids(sim):
    """Every node id of the simulated graph, by type."""
    with sim.snapshot() as snap:
        return {t.name: [format_key(k) for k in snap.type_scan(t.code)] for t in NODE_TYPES}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("query-small")
    append(root / "log.db", small_project())
    rebuild(root / "log.db", root / "proj")
    with GraphReader(root / "proj") as reader:
        yield reader


def _all_ids(ids):
    return [i for group in ids.values() for i in group]


def _pages(reader, document, limit):
    """Every page of a query, following its cursors: (items, answers)."""
    items, answers = [], []
    doc = {**document, "limit": limit}
    while True:
        answer = run_query(reader, doc)
        answers.append(answer)
        items += answer["items"]
        if answer["cursor"] is None:
            return items, answers
        assert answer["truncated"]
        doc = {**doc, "cursor": answer["cursor"]}


# -- the same answers as the reader's calls -------------------------------------------

edge_sets = st.one_of(st.none(), st.lists(st.sampled_from(EDGE_NAMES), min_size=1, max_size=3, unique=True))
directions = st.sampled_from(["out", "in", "both"])
_hypothesis = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_hypothesis
@given(data=st.data(), edges=edge_sets, direction=directions, limit=st.integers(1, 300))
def test_neighbors_equal_the_readers(sim, ids, data, edges, direction, limit):
    """A neighbors query answers what GraphReader.neighbors does, in the same order."""
    node = data.draw(st.sampled_from(_all_ids(ids)))
    expected = [n.as_dict() for n in sim.neighbors(node, edges=edges, direction=direction,
                                                   limit=limit, with_props=True)]
    doc = {"type": "neighbors", "from": {"id": node}, "direction": direction, "limit": limit,
           "with_props": True}
    if edges:
        doc["edges"] = edges
    answer = run_query(sim, doc)
    assert answer["items"] == expected
    assert answer["truncated"] == (answer["cursor"] is not None)


@_hypothesis
@given(data=st.data(), edges=edge_sets, direction=directions, depth=st.integers(1, 3))
def test_traversal_equals_hops(sim, ids, data, edges, direction, depth):
    """A one-step traversal of depth k returning every node reached is GraphReader.hops."""
    node = data.draw(st.sampled_from(ids["Issue"] + ids["User"] + ids["MergeRequest"] + ids["Label"]))
    expected = sim.hops(node, depth, edges=edges, direction=direction, max_nodes=100_000)
    assert not expected["truncated"]
    step = {"direction": direction, "depth": depth, **({"edges": edges} if edges else {})}
    items, _ = _pages(sim, {"type": "traversal", "from": {"id": node}, "steps": [step],
                            "return": "all"}, limit=1000)
    assert {i["id"]: i["depth"] for i in items} == expected["nodes"]


@_hypothesis
@given(data=st.data(), edges=edge_sets, directed=st.booleans(), max_depth=st.integers(1, 6),
       max_nodes=st.sampled_from([5, 50, 1_000_000]))
def test_path_equals_the_readers(sim, ids, data, edges, directed, max_depth, max_nodes):
    """A path query finds the path GraphReader.path finds, and gives up where it does."""
    nodes = ids["Issue"] + ids["User"] + ids["Project"] + ids["MergeRequest"]
    src, dst = data.draw(st.sampled_from(nodes)), data.draw(st.sampled_from(nodes))
    expected = sim.path(src, dst, edges=edges, directed=directed, max_depth=max_depth,
                        max_nodes=max_nodes).as_dict()
    doc = {"type": "path", "from": {"id": src}, "to": {"id": dst}, "directed": directed,
           "max_depth": max_depth, "budget": {"max_nodes": max_nodes}}
    if edges:
        doc["edges"] = edges
    answer = run_query(sim, doc)
    assert (answer["length"], answer["items"], answer["truncated"]) == (
        expected["length"], expected["steps"] or [], expected["truncated"])
    assert answer["found"] == (expected["length"] is not None)


@_hypothesis
@given(data=st.data(), limit=st.integers(1, 40))
def test_nodes_with_equal_filters_page_like_find(sim, ids, data, limit):
    """A nodes query with equality filters pages through what GraphReader.find pages through."""
    type_name, filters = data.draw(st.sampled_from([
        ("Issue", {"state": "opened"}), ("Issue", {"state": "closed", "project_id": 2}),
        ("MergeRequest", {"state": "merged"}), ("Label", {"name": "bug"}),
        ("User", {"username": "zoe.garcia"}), ("Comment", {"target_type": "issue", "project_id": 3}),
    ]))
    expected, after = [], None
    while True:
        page = sim.find(type_name, filters, limit=limit, after=after)
        expected += [n.as_dict() for n in page.items]
        if page.next is None:
            break
        after = page.next
    items, _ = _pages(sim, {"type": "nodes", "select": {"type": type_name, "where": filters}}, limit)
    assert items == expected


# -- cursors ----------------------------------------------------------------------------

PAGED = [
    {"type": "nodes", "select": {"type": "Issue", "where": {"state": "opened"}}},
    {"type": "nodes", "select": {"type": "MergeRequest"}, "order_by": {"by": "created_at", "desc": True}},
    {"type": "nodes", "select": {"type": "Issue"}, "order_by": {"by": "closed_at"}},
    {"type": "nodes", "select": {"type": "Label"}, "order_by": {"by": "id", "desc": True}},
    {"type": "neighbors", "from": {"id": "project:simulate:2"}, "direction": "both"},
    {"type": "neighbors", "from": {"id": "project:simulate:2"}, "direction": "in",
     "select": {"type": "Issue", "where": {"state": "closed"}}},
    {"type": "traversal", "from": {"id": "project:simulate:3"},
     "steps": [{"edges": ["IN_PROJECT"], "direction": "in"}, {"edges": ["AUTHORED"], "direction": "in"}],
     "order_by": {"by": "depth"}, "return": "all"},
    {"type": "aggregate", "select": {"type": "Comment"}, "group_by": [{"edge": "AUTHORED", "direction": "in"}]},
    {"type": "aggregate", "select": {"type": "Issue"}, "group_by": [{"property": "project_id"},
                                                                    {"property": "state"}],
     "order_by": {"by": "key"}},
]


def _identity(item):
    return item.get("id") or json.dumps(item.get("key")) + item.get("edge", "") + item.get("direction", "")


@pytest.mark.parametrize("document", PAGED, ids=lambda d: d["type"])
@pytest.mark.parametrize("limit", [1, 7, 1000])
def test_paging_yields_each_item_once(sim, document, limit):
    """Following the cursors from page to page yields every item exactly once, in the order
    of the one-page answer."""
    everything = run_query(sim, {**document, "limit": 1000})
    assert not everything["truncated"] and everything["cursor"] is None
    items, answers = _pages(sim, document, limit)
    assert [_identity(i) for i in items] == [_identity(i) for i in everything["items"]]
    assert len({_identity(i) for i in items}) == len(items) > 0
    assert all(len(a["items"]) <= limit for a in answers)


def test_order_by_id_descending_reverses_key_order(sim, ids):
    """`order_by: id` follows node key order, `desc` reverses it."""
    doc = {"type": "nodes", "select": {"type": "Label"}, "limit": 1000}
    ascending = [i["id"] for i in run_query(sim, {**doc, "order_by": {"by": "id"}})["items"]]
    descending = [i["id"] for i in run_query(sim, {**doc, "order_by": {"by": "id", "desc": True}})["items"]]
    assert ascending == ids["Label"] and descending == ascending[::-1]


def test_an_empty_page_has_no_cursor(small):
    """A query with no answer says so: no items, not truncated, no cursor."""
    answer = run_query(small, {"type": "nodes", "select": {"type": "Issue", "where": {"title": "nope"}}})
    assert (answer["items"], answer["truncated"], answer["cursor"]) == ([], False, None)


# -- budgets ----------------------------------------------------------------------------


def test_node_budget_stops_a_scan_and_its_cursor_goes_on(sim, ids):
    """A scan that hits its node budget says so, returns what it matched, and its cursor
    resumes after the last node it read: the pages together are the whole answer."""
    doc = {"type": "nodes", "select": {"type": "Comment", "where": {"target_type": "merge_request"}},
           "budget": {"max_nodes": 200}}
    first = run_query(sim, {**doc, "limit": 1000})
    assert first["truncated"] and first["budget"]["exhausted"] == "nodes"
    assert first["budget"]["nodes_visited"] == 200 and first["cursor"]
    items, answers = _pages(sim, doc, 1000)
    expected = [n.id for n in sim.find("Comment", {"target_type": "merge_request"}, limit=10_000).items]
    assert [i["id"] for i in items] == expected
    assert len(answers) >= len(ids["Comment"]) // 200


def test_a_filtered_neighbors_walk_resumes_where_its_budget_stopped(sim):
    """Neighbors filtered by a selector, on a budget smaller than the node's edges: each page
    stops at the budget and its cursor goes on after the last edge read; together the pages
    are the unbounded answer, each item once."""
    doc = {"type": "neighbors", "from": {"id": "project:simulate:2"}, "direction": "in",
           "select": {"type": "Issue", "where": {"state": "closed"}}, "budget": {"max_nodes": 40}}
    expected = run_query(sim, {**doc, "limit": 1000, "budget": {"max_nodes": 100_000}})["items"]
    items, answers = _pages(sim, doc, 1000)
    assert items == expected and len(answers) > 2
    assert all(a["budget"]["exhausted"] == "nodes" for a in answers[:-1])


def test_node_budget_stops_a_traversal(sim):
    """A traversal past its node budget stops, says `nodes`, and holds no more than it visited."""
    answer = run_query(sim, {"type": "traversal", "from": {"id": "project:simulate:2"},
                             "steps": [{"depth": 3}], "return": "all", "limit": 1000,
                             "budget": {"max_nodes": 50}})
    assert answer["truncated"] and answer["budget"]["exhausted"] == "nodes"
    assert answer["budget"]["nodes_visited"] == 50 and 0 < len(answer["items"]) <= 50


def test_time_budget_stops_a_query(sim, monkeypatch):
    """A query whose clock passes its budget stops and says `time` (a clock that advances 1 ms
    per reading stands in for a slow graph)."""
    now = [1000.0]

    def slow_clock():
        now[0] += 0.001
        return now[0]

    monkeypatch.setattr(budget_module.time, "monotonic", slow_clock)
    answer = run_query(sim, {"type": "traversal", "from": {"id": "project:simulate:2"},
                             "steps": [{"depth": 3}], "return": "all", "budget": {"max_ms": 5}})
    assert answer["truncated"] and answer["budget"]["exhausted"] == "time"
    assert answer["budget"]["nodes_visited"] < 5000


def test_relative_times_count_from_the_querys_clock(sim, monkeypatch):
    """`this_month` on 2026-01-20 is January: the same comments as the fixed date finds; a
    month later, none of January's."""
    doc = {"type": "nodes", "select": {"type": "Comment", "where": {"created_at": {"gte": "this_month"}}},
           "limit": 1000}
    fixed = run_query(sim, {**doc, "select": {"type": "Comment", "where": {
        "created_at": {"gte": "2026-01-01"}}}})["items"]
    monkeypatch.setattr(budget_module, "wall_clock", lambda: datetime(2026, 1, 20, 9, tzinfo=UTC))
    assert run_query(sim, doc)["items"] == fixed and fixed
    monkeypatch.setattr(budget_module, "wall_clock", lambda: datetime(2026, 2, 20, 9, tzinfo=UTC))
    assert run_query(sim, doc)["items"] == []


def test_errors_name_the_json_path(small):
    """An unknown node is UnknownNode naming where it was given; a node of the wrong type is a
    bad query at that path."""
    with pytest.raises(UnknownNode, match=r"no node issue:gitlab:1 in the graph - at `\$.from.id`"):
        run_query(small, {"type": "neighbors", "from": {"id": "issue:gitlab:1"}})
    with pytest.raises(UnknownNode, match=r"at `\$.select.where.project_id.eq.node`"):
        run_query(small, {"type": "nodes", "select": {"type": "Issue", "where": {
            "project_id": {"eq": {"node": "gitlab:platform/nope"}}}}})
    with pytest.raises(InvalidQuery) as caught:
        run_query(small, {"type": "traversal", "from": {"id": "project:gitlab:7", "type": "Issue"},
                          "steps": [{}]})
    assert caught.value.path == "$.from.id" and "is a Project, not a Issue" in caught.value.reason


# -- the saved questions ----------------------------------------------------------------


def test_saved_open_issues_equal_the_question(sim, ids):
    """open_issues as a saved query: the same issues, in the same order, with and without a label."""
    for project in ids["Project"]:
        assert run_query(sim, saved.open_issues(project))["items"] == [
            n.as_dict() for n in questions.open_issues(sim, project)]
        for label in ("bug", "feature", "ux"):
            try:
                expected = [n.as_dict() for n in questions.open_issues(sim, project, label=label)]
            except UnknownNode:
                expected = []  # the saved query has no such label to find: nothing matches
            assert run_query(sim, saved.open_issues(project, label=label))["items"] == expected


def test_saved_closed_by_equals_the_question(sim, ids):
    """closed_by as a saved query: the same commits and merge requests."""
    for issue in ids["Issue"][::3]:
        got = [(i["id"], i["props"]) for i in run_query(sim, saved.closed_by(issue))["items"]]
        assert got == [(n.id, n.props) for n in questions.closed_by(sim, issue, limit=1000).items]


def test_saved_authored_equals_the_question(sim, ids):
    """authored as saved queries: a user's items in a project, and the per-author summary."""
    for project in ids["Project"]:
        summary = questions.authored(sim, project)["authors"]
        got: dict = {}
        for item in run_query(sim, saved.authored(project))["items"]:
            author, type_name = item["key"]
            got.setdefault(author, {})[type_name] = item["count"]
        assert got == summary
        for user in ids["User"][::4]:
            expected = questions.authored(sim, project, user=user)["items"]
            got_items = run_query(sim, saved.authored(project, user=user))["items"]
            assert [{k: i[k] for k in ("id", "type", "props")} for i in got_items] == expected


def test_saved_blocks_equals_the_question_within_three_hops(sim, ids):
    """blocks as a saved query: the same issues at the same depths, up to the language's 3 hops."""
    for issue in ids["Issue"]:
        for transitive in (True, False):
            expected = questions.blocks(sim, issue, transitive=transitive, max_depth=3)
            got = run_query(sim, saved.blocks(issue, transitive=transitive))["items"]
            assert sorted((i["id"], i["depth"], i["props"].get("title"), i["props"].get("state"))
                          for i in got) == sorted(
                (b["id"], b["depth"], b["title"], b["state"]) for b in expected)


# -- the examples -----------------------------------------------------------------------


def _example(sim, name):
    return run_query(sim, (EXAMPLES / f"{name}.json").read_bytes())


def _others(reader, node, edge, direction):
    return [n.id for n in reader.neighbors(node, edges=edge, direction=direction, limit=100_000)]


def test_example_open_bugs_without_assignee_in_a_group(sim):
    """Open `bug` issues without an assignee in the projects of group core and its subgroups,
    newest first, as the reader's own calls find them."""
    group = sim.node("simulate:core").id  # group:simulate:3, as the example names it
    holders = [group] + [g for g in _others(sim, group, "IN_GROUP", "in") if g.startswith("group:")]
    projects = [p for g in holders for p in _others(sim, g, "IN_GROUP", "in") if p.startswith("project:")]
    expected = []
    for project in projects:
        for issue in _others(sim, project, "IN_PROJECT", "in"):
            node = sim.node(issue) if issue.startswith("issue:") else None
            if node is None or node.props.get("state") != "opened":
                continue
            labels = [sim.node(x).props.get("name") for x in _others(sim, issue, "HAS_LABEL", "out")]
            if "bug" in labels and not _others(sim, issue, "ASSIGNED_TO", "out"):
                expected.append(node)
    expected.sort(key=lambda n: n.props["created_at"], reverse=True)
    answer = _example(sim, "open-bugs-unassigned-in-group")
    assert [i["id"] for i in answer["items"]] == [n.id for n in expected] and expected


def test_example_merge_requests_closing_a_users_issues(sim):
    """Merge requests with a CLOSES edge to an issue zoe.garcia authored."""
    user = sim.find("User", {"username": "zoe.garcia"}).items[0].id
    issues = [i for i in _others(sim, user, "AUTHORED", "out") if i.startswith("issue:")]
    expected = sorted({m for i in issues for m in _others(sim, i, "CLOSES", "in")
                       if m.startswith("merge_request:")}, key=lambda m: sim.resolve(m))
    answer = _example(sim, "merge-requests-closing-issues-of-user")
    assert [i["id"] for i in answer["items"]] == expected and expected


def test_example_most_commented_issues_this_month(sim):
    """Issues of the project ranked by their comments of January 2026 (ties by id)."""
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    counts = {}
    for issue in _others(sim, "simulate:security/portal-core", "IN_PROJECT", "in"):  # project:simulate:2
        if issue.startswith("issue:"):
            n = sum(1 for c in _others(sim, issue, "COMMENTED_ON", "in")
                    if start <= sim.node(c).props["created_at"] < end)
            if n:
                counts[issue] = n
    answer = _example(sim, "most-commented-issues-this-month")
    got = [(i["key"][0], i["count"]) for i in answer["items"]]
    assert got == sorted(counts.items(), key=lambda kv: (-kv[1], json.dumps([kv[0]])))[:10]
    assert answer["truncated"] == (len(counts) > 10)
    assert answer["items"][0]["nodes"][got[0][0]]["type"] == "Issue"


def test_example_who_touched_the_blockers(sim):
    """Authors, assignees and commenters of the issues that block portal-core#3."""
    issue = sim.node("simulate:security/portal-core#3").id  # issue:simulate:18
    users = set()
    for blocker in _others(sim, issue, "BLOCKS", "in"):
        users.update(_others(sim, blocker, "AUTHORED", "in"))
        users.update(_others(sim, blocker, "ASSIGNED_TO", "out"))
        for comment in _others(sim, blocker, "COMMENTED_ON", "in"):
            users.update(_others(sim, comment, "AUTHORED", "in"))
    answer = _example(sim, "who-touched-blockers")
    assert {i["id"] for i in answer["items"]} == users and users


# -- anything in, a clear answer or a clear error out ------------------------------------

_WORDS = ["type", "id", "select", "from", "to", "steps", "edges", "edge", "direction", "where", "with",
          "without", "any", "node", "depth", "return", "order_by", "by", "desc", "limit", "cursor",
          "budget", "max_nodes", "max_ms", "group_by", "property", "node_type", "eq", "in", "gt", "lt",
          "gte", "contains", "starts_with", "exists", "state", "title", "created_at", "project_id", "iid",
          "nodes", "neighbors", "traversal", "path", "aggregate", "Issue", "User", "Project", "BLOCKS",
          "CLOSES", "AUTHORED", "in", "out", "both", "all", "last", "opened", "issue:gitlab:100",
          "gitlab:platform/api", "user:gitlab:1", "now-P1D", "2026-01-01", "count", "key"]
_scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 2000), st.sampled_from(_WORDS),
                     st.text(max_size=8))
_json = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(_WORDS), inner, max_size=4)), max_leaves=25)
_documents = st.fixed_dictionaries(
    {"type": st.sampled_from(["nodes", "neighbors", "traversal", "path", "aggregate"])},
    optional={k: _json for k in ("select", "from", "to", "steps", "edges", "direction", "group_by",
                                 "order_by", "limit", "return", "budget", "with_props")})


_props = st.sampled_from(["state", "title", "created_at", "project_id", "iid", "name", "username", "colour"])
_values = st.one_of(_scalars, st.sampled_from(["2026-01-01", "this_month", "now-P1D", "o"]),
                    st.fixed_dictionaries({"node": st.sampled_from(["gitlab:platform/api", "x:y"])}))
_conditions = st.one_of(_values, st.dictionaries(
    st.sampled_from(["eq", "ne", "in", "contains", "starts_with", "gt", "gte", "lt", "lte", "exists"]),
    st.one_of(_values, st.lists(_values, min_size=1, max_size=3)), min_size=1, max_size=2))
_refs = st.sampled_from(["issue:gitlab:100", "issue:gitlab:102", "gitlab:platform/api", "user:gitlab:2",
                         "label:gitlab:1", "issue:gitlab:1", "nonsense"])
_types = st.sampled_from(["Issue", "User", "Project", "Label", "MergeRequest", "Comment"])
_edge_names = st.sampled_from(["BLOCKS", "CLOSES", "AUTHORED", "HAS_LABEL", "IN_PROJECT", "ASSIGNED_TO"])
_selectors = st.recursive(
    st.fixed_dictionaries({}, optional={"id": _refs, "type": st.one_of(_types, st.lists(_types, min_size=1,
                                                                                        max_size=2)),
                                        "where": st.dictionaries(_props, _conditions, max_size=2)}),
    lambda inner: st.fixed_dictionaries({}, optional={
        "type": _types, "where": st.dictionaries(_props, _conditions, max_size=2),
        "with": st.lists(st.fixed_dictionaries({"edge": _edge_names}, optional={
            "direction": st.sampled_from(["out", "in", "both"]), "node": inner}), max_size=2),
        "without": st.lists(st.fixed_dictionaries({"edge": _edge_names}), max_size=1),
        "any": st.lists(inner, min_size=1, max_size=2)}), max_leaves=6)
_steps = st.lists(st.fixed_dictionaries({}, optional={
    "edges": st.lists(_edge_names, min_size=1, max_size=2, unique=True),
    "direction": st.sampled_from(["out", "in", "both"]), "depth": st.integers(1, 2), "select": _selectors}),
    min_size=1, max_size=2)
_shaped = st.one_of(
    st.fixed_dictionaries({"type": st.just("nodes"), "select": _selectors}, optional={
        "order_by": st.fixed_dictionaries({"by": _props}, optional={"desc": st.booleans()}),
        "limit": st.integers(1, 5)}),
    st.fixed_dictionaries({"type": st.just("neighbors"), "from": _selectors}, optional={
        "select": _selectors, "direction": st.sampled_from(["out", "in", "both"]), "limit": st.integers(1, 5)}),
    st.fixed_dictionaries({"type": st.just("traversal"), "from": _selectors, "steps": _steps}, optional={
        "return": st.sampled_from(["last", "all"]), "select": _selectors, "limit": st.integers(1, 5)}),
    st.fixed_dictionaries({"type": st.just("path"), "from": _selectors, "to": _selectors}),
    st.fixed_dictionaries({"type": st.just("aggregate"), "select": _selectors, "group_by": st.lists(
        st.one_of(st.fixed_dictionaries({"property": _props}),
                  st.fixed_dictionaries({"edge": _edge_names}), st.just({"node_type": True})),
        min_size=1, max_size=2)}),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=st.one_of(_documents, _json, _shaped, _shaped))
def test_any_document_gets_an_answer_or_a_clear_error(small, document):
    """Whatever the document, the answer is either an answer (items, truncated, cursor, budget)
    or a bad query / unknown node naming a JSON path: never another exception."""
    try:
        answer = run_query(small, document)
    except InvalidQuery as e:
        assert e.path.startswith("$") and e.reason
        return
    except UnknownNode as e:
        assert getattr(e, "path", "$").startswith("$")
        return
    assert {"items", "truncated", "cursor", "budget", "version"} <= set(answer)
    assert len(answer["items"]) <= document.get("limit", 50)
