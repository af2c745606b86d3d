"""Graph queries over HTTP against a real LMDB projection."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ops.api.app import create_app
from ops.api.queries import query_stats
from ops.api.queries import setup as queries_setup
from ops.settings import load_settings
from projections.read.reader import GraphReader
from projections.versions.rebuild import rebuild
from tests.support.projection import simulated_log


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("graph")
    simulated_log(root / "log.db", 3000, seed=5)
    rebuild(root / "log.db", root / "projections", version=1)
    return root


async def _call(url, data_dir, *paths):
    settings = load_settings({}, data_dir=data_dir, nats_url=url, embedded_nats=False)
    app = create_app(settings, setups=[queries_setup])
    async with TestClient(TestServer(app)) as client:
        out = []
        for path in paths:
            response = await client.get(path)
            out.append((response.status, await response.json()))
        return out


def test_counts_node_neighbors_hops_path_and_find(nats_server, data_dir):
    """Every query route answers JSON from the active version."""
    (status, counts), = asyncio.run(_call(nats_server.url, data_dir, "/graph/counts"))
    assert status == 200 and counts["version"] == 1 and counts["position"] == 3000
    (status, page), = asyncio.run(_call(nats_server.url, data_dir, "/graph/types/Issue?state=opened&limit=2"))
    assert status == 200 and len(page["items"]) == 2
    issue = page["items"][0]["id"]
    results = asyncio.run(_call(
        nats_server.url, data_dir, f"/graph/nodes/{issue}", f"/graph/nodes/{issue}/neighbors?direction=out",
        f"/graph/nodes/{issue}/hops?depth=2&max_nodes=50",
        f"/graph/path?from={issue}&to={page['items'][1]['id']}"))
    assert [s for s, _ in results] == [200, 200, 200, 200]
    assert results[0][1]["id"] == issue and results[0][1]["type"] == "Issue"
    assert any(n["edge"] == "IN_PROJECT" for n in results[1][1]["neighbors"])
    assert results[2][1]["count"] >= 2
    assert results[3][1]["length"] >= 1 and results[3][1]["truncated"] is False


def test_path_route_says_truncated(nats_server, data_dir):
    """A path search stopped at max_nodes answers 200 with length null and truncated true."""
    (_, page), = asyncio.run(_call(nats_server.url, data_dir, "/graph/types/Issue?limit=20"))
    a, *others = (item["id"] for item in page["items"])
    found = asyncio.run(_call(nats_server.url, data_dir, *(f"/graph/path?from={a}&to={o}" for o in others)))
    b = next(o for o, (_, body) in zip(others, found) if body["length"] >= 2)  # not a's neighbour
    results = asyncio.run(_call(
        nats_server.url, data_dir, f"/graph/path?from={a}&to={b}&max_nodes=2",
        f"/graph/path?from={a}&to={b}&edge=BLOCKS&directed=true", f"/graph/path?from={a}&to={b}&max_nodes=0"))
    (status, cut), (_, unlinked), (bad, error) = results
    assert status == 200 and cut["length"] is None and cut["truncated"] is True and cut["visited"] > 2
    assert unlinked["length"] is None and unlinked["truncated"] is False
    assert bad == 400 and "max_nodes=0" in error["detail"]


def test_bad_queries_get_clear_errors(nats_server, data_dir):
    """Unknown nodes are 404, bad parameters 400, each with a detail."""
    results = asyncio.run(_call(
        nats_server.url, data_dir, "/graph/nodes/issue:gitlab:999999999", "/graph/nodes/issue:simulate:1/hops?depth=99",
        "/graph/types/Spaceship", "/graph/path?from=issue:simulate:1",
        "/graph/nodes/issue:simulate:1/neighbors?direction=sideways"))
    assert [s for s, _ in results] == [404, 400, 400, 400, 400]
    assert all(body["detail"] for _, body in results)


def test_no_projection_yet_is_503(nats_server, tmp_path):
    """Before any version is built the routes say so with 503."""
    (status, body), = asyncio.run(_call(nats_server.url, tmp_path, "/graph/counts"))
    assert status == 503 and body["error"] == "no_projection"


async def _calls_and_stats(url, data_dir, paths):
    settings = load_settings({}, data_dir=data_dir, nats_url=url, embedded_nats=False)
    app = create_app(settings, setups=[queries_setup])
    async with TestClient(TestServer(app)) as client:
        out = [(r.status, await r.json()) for r in [await client.get(p) for p in paths]]
    return out, query_stats(app)


def test_a_query_that_breaks_answers_500_json_and_counts_as_failed(
        nats_server, data_dir, monkeypatch, caplog):
    """An unexpected error is a JSON 500 pointing at the log, logged with its traceback and
    counted for the api's heartbeat; errors of the caller's making are not failures."""
    def broken(self, ref):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(GraphReader, "node", broken)
    answers, stats = asyncio.run(_calls_and_stats(nats_server.url, data_dir, [
        "/graph/nodes/issue:gitlab:1", "/graph/nodes/issue:gitlab:1/neighbors?limit=0",
        "/graph/nodes/issue:gitlab:999999/hops", "/graph/counts"]))
    assert [status for status, _ in answers] == [500, 400, 404, 200]
    assert answers[0][1] == {"error": "internal",
                             "detail": "the query failed; the api's log has the traceback"}
    assert stats.served == 4 and stats.failed == 1
    failure = next(r for r in caplog.records if r.getMessage() == "graph query failed")
    assert failure.query == "node" and "disk on fire" in str(failure.exc_info[1])


def test_graph_export_streams_the_same_snapshot_as_the_cli(nats_server, data_dir, tmp_path, monkeypatch,
                                                           capsys):
    """GET /graph/export answers the header and every line `fleet export graph` writes; an
    unknown version is a JSON 404."""
    from tests.support.cli import fleet

    async def get(path):
        settings = load_settings({}, data_dir=data_dir, nats_url=nats_server.url, embedded_nats=False)
        app = create_app(settings, setups=[queries_setup])
        async with TestClient(TestServer(app)) as client:
            response = await client.get(path)
            return response.status, response.headers.get("Content-Type"), await response.read()

    status, content_type, body = asyncio.run(get("/graph/export"))
    assert status == 200 and content_type.startswith("application/x-ndjson")
    out = tmp_path / "export.jsonl"
    code, _, _ = fleet(monkeypatch, capsys, "--data-dir", str(data_dir), "export", "graph",
                       "--output", str(out))
    assert code == 0 and body == out.read_bytes()
    header = json.loads(body.split(b"\n", 1)[0])
    assert header["version"] == 1 and header["position"] == 3000
    assert len(body.splitlines()) == 1 + header["nodes"] + header["edges"]
    status, _, body = asyncio.run(get("/graph/export?version=9"))
    assert status == 404 and b"unknown_version" in body


def test_neighbors_and_types_pages_follow_next_to_the_end(nats_server, data_dir):
    """/neighbors and /types say total and truncated, and their `next` cursors page through every
    item once; a bad cursor or limit is a 400 naming it."""
    with GraphReader(data_dir / "projections") as reader:
        project = reader.find("Project", {}, limit=1).items[0].id
        whole = [(n.edge, n.direction, n.id) for n in reader.neighbors(project, limit=100_000)]
        issues = [n.id for n in reader.find("Issue", {}, limit=100_000).items]
    assert len(whole) > 30

    async def follow(first: str, key: str):
        settings = load_settings({}, data_dir=data_dir, nats_url=nats_server.url, embedded_nats=False)
        async with TestClient(TestServer(create_app(settings, setups=[queries_setup]))) as client:
            pages, url = [], first
            while url:
                response = await client.get(url)
                assert response.status == 200, await response.text()
                body = await response.json()
                pages.append(body)
                url = f"{first}&after={body['next']}" if body["next"] else None
            return pages

    pages = asyncio.run(follow(f"/graph/nodes/{project}/neighbors?limit=13", "neighbors"))
    seen = [(n["edge"], n["direction"], n["id"]) for p in pages for n in p["neighbors"]]
    assert seen == whole
    assert all(p["total"] == len(whole) and p["total_is_lower_bound"] is False for p in pages)
    assert [p["truncated"] for p in pages] == [True] * (len(pages) - 1) + [False]
    pages = asyncio.run(follow("/graph/types/Issue?limit=40", "items"))
    assert [n["id"] for p in pages for n in p["items"]] == issues
    assert pages[-1]["truncated"] is False and pages[-1]["next"] is None
    results = asyncio.run(_call(
        nats_server.url, data_dir, f"/graph/nodes/{project}/neighbors?after=garbage!",
        f"/graph/nodes/{project}/neighbors?direction=in&after={pages[0]['next']}",
        f"/graph/nodes/{project}/neighbors?limit=0", f"/graph/nodes/{project}/neighbors?limit=-5",
        f"/graph/nodes/{project}/neighbors?limit={10**30}", "/graph/types/Issue?limit=1001"))
    assert [s for s, _ in results] == [400] * 6
    assert "not a cursor" in results[0][1]["detail"] and "another query" in results[1][1]["detail"]
    assert all("limit=" in body["detail"] for _, body in results[2:])
