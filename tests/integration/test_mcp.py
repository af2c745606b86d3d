"""The MCP server with the SDK's own client: over stdio (`fleet mcp` as a child process) and
over streamable HTTP (`fleet api` as a child process, at /mcp); and POST /graph/query on the
same api process."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import urllib.error
import urllib.request

import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from ops.embedded import free_port
from projections.versions.rebuild import rebuild
from tests.support.cli import fleet_cmd
from tests.support.http import get
from tests.support.projection import append, small_project
from tests.support.wait import wait_until

TOOLS = {"graph_schema", "find_nodes", "get_node", "neighbors", "path", "run_query"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """A data dir whose graph is the small organisation of tests/support/projection.py."""
    root = tmp_path_factory.mktemp("mcp-data")
    append(root / "log.db", small_project())
    rebuild(root / "log.db", root / "projections")
    return root


async def _tool(session: ClientSession, name: str, arguments: dict) -> tuple[bool, object]:
    result = await session.call_tool(name, arguments)
    text = result.content[0].text
    return result.is_error, (text if result.is_error else json.loads(text))


async def _exercise(session: ClientSession) -> None:
    """List the tools, call each one, read the ontology, and get clear errors for bad calls."""
    listed = {t.name: t for t in (await session.list_tools()).tools}
    assert set(listed) == TOOLS
    assert all(t.description and t.input_schema["type"] == "object" for t in listed.values())
    run_schema = listed["run_query"].input_schema
    assert run_schema["required"] == ["query"] and "NodesQuery" in run_schema["$defs"]

    error, schema = await _tool(session, "graph_schema", {})
    assert not error and {n["type"] for n in schema["nodes"]} >= {"Issue", "User", "Project"}

    error, page = await _tool(session, "find_nodes", {"type": "Issue", "where": {"state": "opened"},
                                                      "limit": 1})
    assert not error and [i["id"] for i in page["items"]] == ["issue:gitlab:100"]
    assert page["truncated"] and page["cursor"]
    error, rest = await _tool(session, "find_nodes", {"type": "Issue", "where": {"state": "opened"},
                                                      "limit": 1, "cursor": page["cursor"]})
    assert not error and [i["id"] for i in rest["items"]] == ["issue:gitlab:102"] and not rest["truncated"]

    error, node = await _tool(session, "get_node", {"id": "gitlab:platform/api#1"})
    assert not error and node["id"] == "issue:gitlab:100" and node["props"]["title"] == "Crash on save"

    error, edges = await _tool(session, "neighbors", {"id": "issue:gitlab:100", "edges": ["CLOSES"],
                                                      "direction": "in"})
    assert not error and [(e["edge"], e["id"]) for e in edges["items"]] == [
        ("CLOSES", "merge_request:gitlab:500")]

    error, path = await _tool(session, "path", {"from": "issue:gitlab:100", "to": "issue:gitlab:102",
                                                "edges": ["BLOCKS"], "directed": True})
    assert not error and path["found"] and [s["to"] for s in path["items"]] == [
        "issue:gitlab:101", "issue:gitlab:102"]

    error, answer = await _tool(session, "run_query", {"query": {
        "type": "traversal", "from": {"id": "issue:gitlab:102"},
        "steps": [{"edges": ["BLOCKS"], "direction": "in", "depth": 2}], "return": "all"}})
    assert not error and {i["id"]: i["depth"] for i in answer["items"]} == {
        "issue:gitlab:101": 1, "issue:gitlab:100": 2}

    error, message = await _tool(session, "find_nodes", {"type": "Issue", "limit": 0})
    assert error and "at `$.limit`" in message and "minimum of 1" in message
    error, message = await _tool(session, "find_nodes", {"type": "Issue", "where": {"colour": "red"}})
    assert error and "Issue has no property 'colour'" in message and "at `$.where.colour`" in message
    error, message = await _tool(session, "get_node", {"id": "issue:gitlab:1"})
    assert error and "no node issue:gitlab:1" in message
    error, message = await _tool(session, "run_query", {"query": {"type": "nodes", "select": {
        "type": "Issue"}, "limit": "ten"}})
    assert error and "at `$.query.limit`" in message
    with pytest.raises(MCPError, match="no tool 'drop_graph'"):
        await session.call_tool("drop_graph", {})

    resources = {str(r.uri) for r in (await session.list_resources()).resources}
    assert resources == {"graph://ontology", "graph://query-schema"}
    ontology = json.loads((await session.read_resource("graph://ontology")).contents[0].text)
    assert ontology["name"] == "graph" and any(e["type"] == "BLOCKS" for e in ontology["edges"])


def test_stdio_server_answers_the_sdk_client(data_dir):
    """`fleet mcp` over stdio: the SDK's client lists and calls every tool."""
    command, *args = fleet_cmd("--data-dir", str(data_dir), "mcp")

    async def main():
        params = StdioServerParameters(command=command, args=args, env=dict(os.environ))
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            init = await session.initialize()
            assert init.server_info.name == "graphfleet" and "graph_schema" in init.instructions
            await _exercise(session)

    asyncio.run(asyncio.wait_for(main(), 60))




def _post(url: str, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.fixture(scope="module")
def api(nats_server, data_dir):
    """A `fleet api` process serving the fixture graph; its base URL."""
    port = free_port()
    env = dict(os.environ, FLEET_DATA_DIR=str(data_dir), FLEET_NATS_URL=nats_server.url,
               FLEET_API_PORT=str(port))
    process = subprocess.Popen(fleet_cmd("api"), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        asyncio.run(wait_until(lambda: get(base + "/healthz", timeout=5)[0] == 200
                                        or process.poll() is not None,
                               timeout_secs=60, interval_secs=0.2, message="the api did not start"))
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_http_server_at_mcp_answers_the_sdk_client(api):
    """The api's /mcp (streamable HTTP): the SDK's client lists and calls every tool."""
    async def main():
        async with streamable_http_client(api + "/mcp") as (read, write), \
                ClientSession(read, write) as session:
            await session.initialize()
            await _exercise(session)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_http_mcp_refuses_a_foreign_host_header(api):
    """On loopback, a request naming another Host (DNS rebinding) is refused by the SDK."""
    request = urllib.request.Request(
        api + "/mcp", data=b'{"jsonrpc":"2.0","id":1,"method":"ping"}', method="POST",
        headers={"Content-Type": "application/json", "Host": "evil.example:80",
                 "Accept": "application/json, text/event-stream"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 421 and b"Invalid Host header" in refused.value.read()


def test_post_graph_query_answers_and_names_the_json_path(api):
    """POST /graph/query: an answer with cursor and budget; errors as {error, detail, path}."""
    status, answer = _post(api + "/graph/query", json.dumps({
        "type": "nodes", "select": {"type": "Issue", "where": {"state": "opened"}}, "limit": 1}).encode())
    assert status == 200 and answer["items"][0]["id"] == "issue:gitlab:100"
    assert answer["truncated"] and answer["cursor"] and answer["budget"]["exhausted"] is None
    assert answer["items"][0]["props"]["created_at"].startswith("2026-01-01T")

    status, error = _post(api + "/graph/query", b'{"type": "nodes", "select": {"type": "Issue", '
                                                 b'"where": {"created_at": {"gt": "soon"}}}}')
    assert status == 400 and error["error"] == "bad_query"
    assert error["path"] == "$.select.where.created_at.gt" and "ISO 8601" in error["detail"]
    status, error = _post(api + "/graph/query", b'{"type": "path", "from": {"id": "issue:gitlab:1"}, '
                                                 b'"to": {"id": "issue:gitlab:100"}}')
    assert status == 404 and error["error"] == "unknown_node" and error["path"] == "$.from.id"
    status, error = _post(api + "/graph/query", b"not json")
    assert status == 400 and error["path"] == "$"

