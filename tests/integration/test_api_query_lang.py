"""POST /graph/query in-process: answers, errors with their JSON path, and the api's counts."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ops.api import query_lang
from ops.api.app import create_app
from ops.api.queries import query_stats
from ops.api.queries import setup as queries_setup
from ops.settings import load_settings
from projections.versions.rebuild import rebuild
from tests.support.projection import append, small_project


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("query-lang-api")
    append(root / "log.db", small_project())
    rebuild(root / "log.db", root / "projections")
    return root


async def _post_all(url, data_dir, bodies, **settings_overrides):
    settings = load_settings({}, data_dir=data_dir, nats_url=url, embedded_nats=False,
                             **settings_overrides)
    app = create_app(settings, setups=[queries_setup, query_lang.setup])
    async with TestClient(TestServer(app)) as client:
        out = []
        for body in bodies:
            response = await client.post("/graph/query", data=body,
                                         headers={"Content-Type": "application/json"})
            out.append((response.status, await response.json()))
    return out, query_stats(app)


def test_answers_errors_and_counts(nats_server, data_dir, monkeypatch, caplog):
    """Answers are 200; a bad document 400, an unknown node 404, each with its JSON path; a
    query that breaks is a JSON 500 logged with its traceback; all count for the heartbeat,
    only the 500 as failed."""
    real_execute = query_lang.execute

    def execute(reader, planned):
        if planned.limit == 13:
            raise RuntimeError("disk on fire")
        return real_execute(reader, planned)

    monkeypatch.setattr(query_lang, "execute", execute)
    answers, stats = asyncio.run(_post_all(nats_server.url, data_dir, [
        b'{"type": "neighbors", "from": {"id": "issue:gitlab:100"}, "edges": ["BLOCKS"]}',
        b'{"type": "nodes", "select": {"type": "Issue"}, "limit": "ten"}',
        b'{"type": "traversal", "from": {"id": "gitlab:platform/api#9"}, "steps": [{}]}',
        b'{"type": "nodes", "select": {"type": "Issue"}, "limit": 13}',
    ]))
    assert [status for status, _ in answers] == [200, 400, 404, 500]
    assert [n["id"] for n in answers[0][1]["items"]] == ["issue:gitlab:101"]
    assert answers[1][1] == {"error": "bad_query", "path": "$.limit",
                             "detail": "Expected `int`, got `str` - at `$.limit`"}
    assert answers[2][1]["error"] == "unknown_node" and answers[2][1]["path"] == "$.from.id"
    assert "no issue 9 in project gitlab:platform/api" in answers[2][1]["detail"]
    assert answers[3][1]["error"] == "internal"
    assert stats.served == 4 and stats.failed == 1
    assert any(r.getMessage() == "graph query failed" and "disk on fire" in str(r.exc_info[1])
               for r in caplog.records)


def test_an_oversized_document_is_refused_before_it_is_read(nats_server, data_dir):
    """A body past the api's limit is a JSON 413, not a query."""
    big = b'{"type": "nodes", "select": {"type": "Issue", "where": {"title": "' + b"x" * 5000 + b'"}}}'
    answers, _ = asyncio.run(_post_all(nats_server.url, data_dir, [big], max_body_bytes=1024))
    assert answers[0][0] == 413 and answers[0][1]["error"]


def test_no_projection_yet_is_503(nats_server, tmp_path):
    """Before the first version is built the answer is 503 no_projection."""
    answers, _ = asyncio.run(_post_all(nats_server.url, tmp_path, [
        b'{"type": "nodes", "select": {"type": "Issue"}}']))
    assert answers[0][0] == 503 and answers[0][1]["error"] == "no_projection"
