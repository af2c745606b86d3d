"""The MCP tools without a transport: their schemas, their answers, their errors."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ops.mcp.tools import TOOLS, ToolError, call_tool, resources
from projections.read.reader import GraphReader
from projections.versions.rebuild import rebuild
from tests.support.projection import append, small_project

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples" / "queries").glob("*.json"))


@pytest.fixture(scope="module")
def reader(tmp_path_factory):
    root = tmp_path_factory.mktemp("mcp-tools")
    append(root / "log.db", small_project())
    rebuild(root / "log.db", root / "projections")
    with GraphReader(root / "projections") as r:
        yield r


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_every_tool_has_a_description_and_an_object_schema(name):
    """Each tool says what it does and takes a JSON object checked by a 2020-12 schema."""
    tool = TOOLS[name]
    jsonschema.Draft202012Validator.check_schema(tool["input_schema"])
    assert tool["input_schema"]["type"] == "object" and len(tool["description"]) > 40


def test_run_query_schema_takes_the_examples():
    """The run_query input schema (the language's, under `query`) accepts every example."""
    validator = jsonschema.Draft202012Validator(TOOLS["run_query"]["input_schema"])
    for path in EXAMPLES:
        validator.validate({"query": json.loads(path.read_text())})
    assert list(validator.iter_errors({"query": {"type": "nodez"}}))


def test_resources_are_the_ontology_and_the_query_schema():
    """Two JSON resources: the ontology and the language's schema."""
    offered = resources()
    assert set(offered) == {"graph://ontology", "graph://query-schema"}
    assert offered["graph://ontology"][2]["name"] == "graph"


def test_find_nodes_pages_with_its_cursor(reader):
    """find_nodes pages: the cursor of one answer gives the next page."""
    first = call_tool(reader, "find_nodes", {"type": "Issue", "limit": 2})
    rest = call_tool(reader, "find_nodes", {"type": "Issue", "limit": 2, "cursor": first["cursor"]})
    assert [i["id"] for i in first["items"] + rest["items"]] == [
        "issue:gitlab:100", "issue:gitlab:101", "issue:gitlab:102"]
    assert first["truncated"] and not rest["truncated"]


def test_a_cursor_of_another_call_is_refused(reader):
    """A cursor handed to another call is a tool error naming the argument."""
    first = call_tool(reader, "find_nodes", {"type": "Issue", "limit": 1})
    with pytest.raises(ToolError, match=r"belongs to another query - .* at `\$.cursor`"):
        call_tool(reader, "find_nodes", {"type": "User", "limit": 1, "cursor": first["cursor"]})


def test_an_unknown_tool_is_not_a_tool_error(reader):
    """Calling a tool that does not exist is a KeyError (the server makes it a protocol error)."""
    with pytest.raises(KeyError):
        call_tool(reader, "drop_graph", {})


_anything = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 600), st.text(max_size=12),
              st.sampled_from(["issue:gitlab:100", "Issue", "BLOCKS", "in", "gitlab:platform/api"])),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.sampled_from(["type", "where", "state", "id", "query",
                                                             "edges", "limit", "from", "to"]), inner,
                                            max_size=3)), max_leaves=12)
_arguments = st.dictionaries(
    st.sampled_from(["type", "where", "source", "order_by", "descending", "limit", "cursor", "id", "edges",
                     "direction", "from", "to", "directed", "max_depth", "query", "bogus"]),
    _anything, max_size=5)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(TOOLS)), arguments=_arguments)
def test_any_arguments_get_an_answer_or_a_tool_error(reader, name, arguments):
    """Whatever the arguments, a tool answers JSON or raises ToolError with a message an agent can
    act on; never another exception."""
    try:
        answer = call_tool(reader, name, arguments)
    except ToolError as e:
        assert str(e)
        return
    json.dumps(answer, default=str)


def test_the_server_says_when_the_graph_cannot_answer_yet(tmp_path):
    """Before the first version is built, a tool call is a tool error saying so (the SDK's
    in-process client against the server itself), and the schema tool still answers."""
    import anyio
    from mcp import Client

    from ops.mcp.server import build_server

    async def main():
        with GraphReader(tmp_path / "projections") as empty:
            async with Client(build_server(empty)) as client:
                result = await client.call_tool("find_nodes", {"type": "Issue"})
                assert result.is_error and "the graph cannot answer yet" in result.content[0].text
                schema = await client.call_tool("graph_schema", {})
                assert not schema.is_error and schema.structured_content["name"] == "graph"

    anyio.run(main)
