"""`fleet query run` and `fleet schema query`, in-process, on a small graph."""

from __future__ import annotations

import io
import json
import sys

import jsonschema
import pytest

from projections.versions.rebuild import rebuild
from tests.support.cli import fleet
from tests.support.projection import append, small_project


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("query-cli")
    append(root / "log.db", small_project())
    rebuild(root / "log.db", root / "projections")
    return root


def test_run_a_document_from_a_file_and_page_with_the_cursor(monkeypatch, capsys, data_dir, tmp_path):
    """A document file answers JSON (times as RFC 3339); --cursor gives the next page."""
    doc = tmp_path / "q.json"
    doc.write_text(json.dumps({"type": "nodes", "select": {"type": "Issue", "where": {"state": "opened"}},
                               "limit": 1}))
    code, out, _ = fleet(monkeypatch, capsys, "--data-dir", str(data_dir), "query", "run", str(doc))
    first = json.loads(out)
    assert code == 0 and [i["id"] for i in first["items"]] == ["issue:gitlab:100"] and first["truncated"]
    assert first["items"][0]["props"]["created_at"].startswith("2026-01-01T")
    code, out, _ = fleet(monkeypatch, capsys, "--data-dir", str(data_dir), "query", "run", str(doc),
                         "--cursor", first["cursor"])
    second = json.loads(out)
    assert code == 0 and [i["id"] for i in second["items"]] == ["issue:gitlab:102"]
    assert second["cursor"] is None and not second["truncated"]


def test_run_from_stdin_and_a_saved_query(monkeypatch, capsys, data_dir):
    """`-` reads the document from stdin; --saved runs a named question with -p arguments."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(
        b'{"type": "neighbors", "from": {"id": "issue:gitlab:100"}, "edges": ["CLOSES"], "direction": "in"}')))
    code, out, _ = fleet(monkeypatch, capsys, "--data-dir", str(data_dir), "query", "run", "-")
    assert code == 0 and [n["id"] for n in json.loads(out)["items"]] == ["merge_request:gitlab:500"]
    code, out, _ = fleet(monkeypatch, capsys, "--data-dir", str(data_dir), "query", "run", "--saved",
                         "open-issues", "-p", "project=gitlab:platform/api", "-p", "label=bug")
    assert code == 0 and [n["id"] for n in json.loads(out)["items"]] == ["issue:gitlab:100"]


@pytest.mark.parametrize(("document", "code", "words"), [
    (b'{"type": "nodes", "select": {"type": "Issue", "where": {"iid": "x"}}}', 2,
     'expected an integer, got "x" - at `$.select.where.iid`'),
    (b"{not json", 2, "not valid JSON: Expecting property name"),
    (b'{"type": "neighbors", "from": {"id": "issue:gitlab:1"}}', 1,
     "no node issue:gitlab:1 in the graph - at `$.from.id`"),
])
def test_bad_documents_exit_with_the_json_path(monkeypatch, capsys, data_dir, tmp_path, document, code, words):
    """A malformed document exits 2, an unknown node 1, each message naming the JSON path."""
    path = tmp_path / "bad.json"
    path.write_bytes(document)
    got, _, err = fleet(monkeypatch, capsys, "--data-dir", str(data_dir), "query", "run", str(path))
    assert got == code and words in err


def test_schema_query_is_a_2020_12_schema(monkeypatch, capsys):
    """`fleet schema query` prints the language's JSON Schema, which a 2020-12 validator accepts."""
    code, out, _ = fleet(monkeypatch, capsys, "schema", "query")
    schema = json.loads(out)
    assert code == 0 and schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate({"type": "path", "from": {"id": "a:b"}, "to": {"id": "c:d"}}, schema)
