"""The query language without a graph: documents, their JSON Schema, the planner, cursors."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest

from projections.read.query import cursor as cursors
from projections.read.query.plan import plan
from projections.read.query.saved import SAVED
from projections.read.query.schema import InvalidQuery, parse, query_json_schema
from projections.read.query.selector import NodeRef

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "queries").glob("*.json"))

GOOD = [
    {"type": "nodes", "select": {"type": "Issue", "where": {"state": "opened"}}},
    {"type": "nodes", "select": {"type": "Issue", "where": {
        "created_at": {"gte": "2026-01-01", "lt": "2026-02-01T00:00:00Z"},
        "title": {"contains": "crash"}, "iid": {"in": [1, 2, 3]}}},
     "order_by": {"by": "created_at", "desc": True}, "limit": 10,
     "budget": {"max_nodes": 500, "max_ms": 100}},
    {"type": "neighbors", "from": {"id": "issue:gitlab:12"}, "edges": ["CLOSES"], "direction": "in"},
    {"type": "traversal", "from": {"id": "gitlab:platform/api"},
     "steps": [{"edges": ["IN_PROJECT"], "direction": "in", "select": {"type": "Issue"}},
               {"edges": [{"type": "AUTHORED", "direction": "in"}], "depth": 2}],
     "return": "all", "select": {"type": "User"}},
    {"type": "path", "from": {"id": "user:gitlab:1"}, "to": {"id": "issue:gitlab:3"}, "max_depth": 4},
    {"type": "aggregate", "select": {"type": "Issue"}, "group_by": [{"property": "state"}]},
    *[json.loads(p.read_text()) for p in EXAMPLES],
]

# (document, JSON path of the error, words the message holds)
BAD = [
    ({"type": "nodez"}, "$.type", "nodes, neighbors, traversal, path, aggregate"),
    ({"select": {"type": "Issue"}}, "$", "missing required field `type`"),
    ({"type": "nodes"}, "$", "missing required field `select`"),
    ({"type": "nodes", "select": {"type": "Isue"}}, "$.select.type", "node types: Group"),
    ({"type": "nodes", "select": {"type": "Issue"}, "limit": 0}, "$.limit", ">= 1"),
    ({"type": "nodes", "select": {"type": "Issue"}, "limit": 5000}, "$.limit", "<= 1000"),
    ({"type": "nodes", "select": {"type": "Issue"}, "colour": 1}, "$", "unknown field `colour`"),
    ({"type": "nodes", "select": {"type": "Issue", "where": {"state": {"like": "o%"}}}},
     "$.select.where[...]", "unknown field `like`"),
    ({"type": "neighbors", "from": {"id": "issue:gitlab:1"}, "direction": "up"}, "$.direction",
     "out, in, both"),
    ({"type": "traversal", "from": {"id": "a:b"}, "steps": [{"edges": ["FIXES"]}]},
     "$.steps[0].edges[0]", "edge types: IN_GROUP"),
    ({"type": "traversal", "from": {"id": "a:b"}, "steps": []}, "$.steps", "length >= 1"),
    ({"type": "nodes", "select": {"type": "Issue", "with": [{"edge": "HAS_LABEL", "direction": "x"}]}},
     "$.select.with[0].direction", "out, in, both"),
    ({"type": "path", "from": {"id": "a:b"}, "to": {"id": "c:d"}, "max_depth": 9}, "$.max_depth", "<= 6"),
    ({"type": "nodes", "select": {"type": "Issue"}, "budget": {"max_nodes": 0}}, "$.budget.max_nodes",
     ">= 1"),
]

# Documents the shape allows but the planner refuses, with the path it names.
UNPLANNABLE = [
    ({"type": "nodes", "select": {"type": "Issue", "where": {"colour": "red"}}},
     "$.select.where.colour", "Issue has no property 'colour' - it has: project_id"),
    ({"type": "nodes", "select": {"type": "Issue", "where": {"created_at": {"gt": "yesterday"}}}},
     "$.select.where.created_at.gt", "not an ISO 8601 time"),
    ({"type": "nodes", "select": {"type": "Issue", "where": {"title": {"gt": 3}}}},
     "$.select.where.title.gt", "compares numbers and times"),
    ({"type": "nodes", "select": {"type": "Issue", "where": {"iid": {"contains": "1"}}}},
     "$.select.where.iid.contains", "is for text"),
    ({"type": "nodes", "select": {"type": "Issue", "where": {"iid": "12"}}},
     "$.select.where.iid", "expected an integer"),
    ({"type": "nodes", "select": {"type": "Issue", "where": {"iid": {"in": [1, "2"]}}}},
     "$.select.where.iid.in[1]", "expected an integer"),
    ({"type": "nodes", "select": {"where": {"title": "x"}}}, "$.select", "give the selector a `type`"),
    ({"type": "nodes", "select": {"type": "Issue"}, "order_by": {"by": "colour"}}, "$.order_by.by",
     "no property 'colour'"),
    ({"type": "traversal", "from": {"id": "a:b"}, "steps": [{"depth": 2}, {"depth": 2}]}, "$.steps",
     "at most 3"),
    ({"type": "neighbors", "from": {"type": "Issue"}}, "$.from", "name the node by `id`"),
    ({"type": "aggregate", "select": {"type": "Issue"}, "group_by": [{}]}, "$.group_by[0]",
     "exactly one of"),
    ({"type": "aggregate", "select": {"type": "Issue"}, "from": {"id": "a:b"},
      "group_by": [{"node_type": True}]}, "$", "either `select`"),
    ({"type": "aggregate", "select": {"type": "Issue"}, "group_by": [{"node_type": True}],
      "order_by": {"by": "state"}}, "$.order_by.by", "`count` or `key`"),
]


def _fails_at(document, path: str, words: str) -> InvalidQuery:
    with pytest.raises(InvalidQuery) as caught:
        plan(parse(document))
    assert caught.value.path == path, str(caught.value)
    assert words in caught.value.reason
    assert str(caught.value).endswith(f"- at `{path}`")
    return caught.value


@pytest.fixture(scope="module")
def validator():
    schema = query_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("document", GOOD, ids=lambda d: d["type"])
def test_good_documents_parse_plan_and_meet_the_published_schema(document, validator):
    """Every good document (the examples too) parses, plans and is valid under the JSON Schema;
    as JSON text it parses the same."""
    validator.validate(document)
    assert plan(parse(document)) == plan(parse(json.dumps(document).encode()))


@pytest.mark.parametrize(("document", "path", "words"), BAD, ids=[b[1] for b in BAD])
def test_malformed_documents_name_the_json_path(document, path, words, validator):
    """A malformed document is refused with the JSON path of the culprit, and the published
    schema refuses it too."""
    _fails_at(document, path, words)
    assert list(validator.iter_errors(document))


@pytest.mark.parametrize(("document", "path", "words"), UNPLANNABLE, ids=[u[1] for u in UNPLANNABLE])
def test_the_planner_names_the_json_path_of_what_cannot_be(document, path, words):
    """What the shape allows but the ontology does not is refused by the planner, with a path."""
    _fails_at(document, path, words)


def test_deep_nesting_is_refused_not_a_crash():
    """Selectors nested past the bound are refused with a path; past the decoder's recursion,
    at `$`."""
    sel: dict = {"type": "Issue"}
    for _ in range(5):
        sel = {"type": "Issue", "with": [{"edge": "BLOCKS", "node": sel}]}
    _fails_at({"type": "nodes", "select": sel}, "$.select.with[0].node.with[0].node.with[0].node.with[0].node",
              "nest at most 4 deep")
    deep = b'{"type":"nodes","select":' + b'{"any":[' * 5000 + b'{"type":"Issue"}' + b"]}" * 5000 + b"}"
    with pytest.raises(InvalidQuery) as caught:
        parse(deep)
    assert caught.value.path == "$" and "nests too deep" in caught.value.reason


def test_not_json_and_not_an_object():
    """Text that is not JSON, and JSON that is not an object, are refused at `$`."""
    for raw in (b"{nope", b"[1, 2]", "42"):
        with pytest.raises(InvalidQuery) as caught:
            parse(raw)
        assert caught.value.path == "$"


def test_planner_picks_the_cheapest_access_path():
    """By id; an index of two fields over an anchor; an anchor over a one-field index; a scan."""
    def access(select):
        return plan(parse({"type": "nodes", "select": select})).source.access

    assert access({"id": "issue:gitlab:1"}).kind == "id"
    by_index = access({"type": "Issue", "where": {
        "project_id": {"eq": {"node": "gitlab:a/b"}}, "state": "opened"},
        "with": [{"edge": "IN_PROJECT", "node": {"id": "gitlab:a/b"}}]})
    assert by_index.kind == "index" and by_index.index.fields == ("project_id", "state")
    assert by_index.values == (NodeRef("gitlab:a/b", "$.select.where.project_id.eq.node"), "opened")
    anchored = access({"type": "Issue", "where": {"state": "opened"},
                       "with": [{"edge": "IN_PROJECT", "node": {"id": "gitlab:a/b"}}]})
    assert anchored.kind == "anchor" and anchored.ref == "gitlab:a/b" and anchored.edges == ((2, "in"),)
    assert access({"type": "Issue", "where": {"state": "opened"}}).kind == "index"
    assert access({"type": ["Issue", "Comment"]}).kind == "scan"


def test_times_are_parsed_and_dates_are_midnight_utc():
    """A date alone is its midnight UTC; a naive time is UTC; an offset is kept."""
    preds = plan(parse({"type": "nodes", "select": {"type": "Issue", "where": {"created_at": {
        "gte": "2026-01-31", "lt": "2026-02-01T12:00:00", "ne": "2026-01-31T10:00:00+02:00"}}}})
    ).source.match.preds
    values = {p.op: p.value for p in preds}
    assert values["gte"] == datetime(2026, 1, 31, tzinfo=UTC)
    assert values["lt"] == datetime(2026, 2, 1, 12, tzinfo=UTC)
    assert values["ne"].utcoffset().total_seconds() == 7200


def test_relative_times_are_kept_for_the_executor():
    """`now-P7D`, `this_month` and the like plan to relative times (the planner has no clock);
    a malformed one is refused with its path."""
    from datetime import timedelta

    from projections.read.query.selector import RelativeTime

    preds = plan(parse({"type": "nodes", "select": {"type": "Issue", "where": {"created_at": {
        "gte": "this_month", "lt": "now-P1W2DT3H", "gt": "today+PT30M"}}}})).source.match.preds
    values = {p.op: p.value for p in preds}
    assert values["gte"] == RelativeTime("this_month")
    assert values["lt"] == RelativeTime("now", -timedelta(days=9, hours=3))
    assert values["gt"] == RelativeTime("today", timedelta(minutes=30))
    now = datetime(2026, 3, 18, 15, 4, 5, tzinfo=UTC)  # a Wednesday
    assert RelativeTime("this_week").at(now) == datetime(2026, 3, 16, tzinfo=UTC)
    assert RelativeTime("this_year", -timedelta(days=1)).at(now) == datetime(2025, 12, 31, tzinfo=UTC)
    for bad in ("now-7D", "this_month-P", "now-P1M", "nowish"):
        _fails_at({"type": "nodes", "select": {"type": "Issue", "where": {"created_at": {"gt": bad}}}},
                  "$.select.where.created_at.gt", "not a" if bad == "nowish" else "not a relative time")


def test_cursor_belongs_to_its_query():
    """A cursor carries its query's fingerprint: another query's cursor, or garbage, is refused
    at `$.cursor`; page size and budget may change between pages."""
    doc = {"type": "nodes", "select": {"type": "Issue"}, "limit": 5}
    fp = plan(parse(doc)).fingerprint
    token = cursors.encode(fp, ["04ab"])
    resumed = plan(parse({**doc, "limit": 7, "budget": {"max_nodes": 10}, "cursor": token}))
    assert resumed.after == ["04ab"] and resumed.limit == 7
    _fails_at({"type": "nodes", "select": {"type": "User"}, "cursor": token}, "$.cursor",
              "belongs to another query")
    _fails_at({**doc, "cursor": "not-a-cursor"}, "$.cursor", "not a cursor")


def test_saved_questions_are_valid_documents(validator):
    """The four named questions, with and without their options, are documents of the language."""
    docs = [SAVED["open-issues"]("gitlab:a/b"), SAVED["open-issues"]("gitlab:a/b", label="bug"),
            SAVED["closed-by"]("gitlab:a/b#1"), SAVED["authored"]("gitlab:a/b"),
            SAVED["authored"]("gitlab:a/b", user="user:gitlab:1"), SAVED["blocks"]("gitlab:a/b#1"),
            SAVED["blocks"]("gitlab:a/b#1", transitive=False)]
    for doc in docs:
        validator.validate(doc)
        plan(parse(doc))
