"""`fleet schema changes` is standard JSON Schema 2020-12, and real change events validate against it."""

from __future__ import annotations

import json

import jsonschema
import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator, FormatChecker

from events.log import EventLog
from ops.cli import cli
from projections.changes.contract import NOTICE_KINDS, change_from_record, encode_change
from projections.changes.diff import append_diff, append_resync
from projections.changes.outbox import OutboxReader, append_rebuilt
from projections.model.ontology import NAME, VERSION
from projections.store.graph import GraphStore
from projections.versions.digest import digest_in
from tests.support.projection import append, apply_log, ev, small_project

KINDS = {"node_upserted", "node_deleted", "edge_added", "edge_updated", "edge_removed", "rebuilt",
         "synced"}
#: keywords a subschema may hold in 2020-12 (core, applicator, validation, unevaluated, format,
#: content and meta-data vocabularies): what a strict validator (ajv's strict mode) accepts
KEYWORDS = set(Draft202012Validator.VALIDATORS) | {
    "$schema", "$id", "$defs", "$anchor", "$dynamicAnchor", "$comment", "$vocabulary", "title",
    "description", "default", "examples", "deprecated", "readOnly", "writeOnly", "contentEncoding",
    "contentMediaType", "contentSchema"}


def printed_schema() -> dict:
    result = CliRunner().invoke(cli, ["schema", "changes"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def subschemas(schema: dict, where: str = "#"):
    """Every schema object inside ``schema`` (not the names under ``properties`` or ``$defs``)."""
    yield where, schema
    for key, value in schema.items():
        if key in ("properties", "$defs", "patternProperties", "dependentSchemas"):
            for name, sub in value.items():
                yield from subschemas(sub, f"{where}/{key}/{name}")
        elif key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            for i, sub in enumerate(value):
                yield from subschemas(sub, f"{where}/{key}/{i}")
        elif isinstance(value, dict) and key not in ("default", "const", "examples"):
            yield from subschemas(value, f"{where}/{key}")


def wire_records(tmp_path) -> list[dict]:
    """Change events of every kind, produced by the real path: live apply with the outbox on,
    a `rebuilt` notice, a diff closed by `synced`, a `synced` that says resync, then each record
    as the change publisher sends it."""
    log_path = tmp_path / "log.db"
    append(log_path, small_project() + [
        ev("member.added", user_id=1, project_id=7, role="developer"),
        ev("member.updated", user_id=1, project_id=7, role="maintainer"),
        ev("issue.unlabeled", issue_id=101, project_id=7, label_id=2),
        ev("issue.deleted", issue_id=102, project_id=7),
    ])
    with GraphStore(tmp_path / "v", create=True) as store:
        apply_log(store, log_path, batch=3)
        append_rebuilt(store, projection=NAME, version=VERSION, previous=VERSION - 1, digest="0" * 64)
        append_diff(store, None, NAME, VERSION, None, digest_of=lambda txn: digest_in(store, txn).hexdigest)
        append_resync(store, NAME, VERSION, VERSION - 1, changes=12)
    reader = OutboxReader(tmp_path / "v")
    try:
        _, _, records = reader.read(0, 10_000)
    finally:
        reader.close()
    with EventLog(log_path, readonly=True) as event_log:
        causes, _ = event_log.causes(sorted({r["position"] for r in records}))
    wire = []
    for record in records:
        event_id, occurred_at = causes.get(record["position"], (None, None))
        if record["kind"] in NOTICE_KINDS or record.get("diff"):
            event_id = occurred_at = None  # a notice has no causing event
        change = change_from_record(record, projection=NAME, version=VERSION, event_id=event_id,
                                    occurred_at=occurred_at)
        wire.append(json.loads(encode_change(change)))
    return wire


def test_the_schema_is_2020_12_that_a_strict_validator_compiles():
    """check_schema passes, the dialect is declared, and no keyword is foreign to JSON Schema."""
    schema = printed_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    foreign = {f"{where}: {key}" for where, sub in subschemas(schema) for key in sub if key not in KEYWORDS}
    assert not foreign, f"not JSON Schema keywords (OpenAPI?): {sorted(foreign)}"
    tags = {d["properties"]["kind"]["enum"][0] for d in schema["$defs"].values()}
    assert tags == KINDS


def test_every_kind_of_real_change_validates_with_format_checking(tmp_path):
    """One real record of each of the seven kinds validates; times are checked as RFC 3339."""
    assert "date-time" in FormatChecker().checkers, "install jsonschema[format-nongpl] (test extra)"
    validator = Draft202012Validator(printed_schema(), format_checker=FormatChecker())
    changes = wire_records(tmp_path)
    assert {c["kind"] for c in changes} == KINDS
    for change in changes:
        errors = [e.message for e in validator.iter_errors(change)]
        assert not errors, (change, errors)
    caused = next(c for c in changes if c["kind"] == "edge_updated")
    assert caused["occurred_at"] and caused["event_id"]
    with pytest.raises(jsonschema.ValidationError, match="date-time"):
        validator.validate({**caused, "occurred_at": "yesterday at noon"})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**caused, "kind": "node_renamed"})


def test_changed_is_absent_on_a_new_node_and_names_the_changes_otherwise(tmp_path):
    """README: `changed` lists the changed properties of an existing node, and is absent for a new one."""
    upserts = [c for c in wire_records(tmp_path) if c["kind"] == "node_upserted" and not c.get("diff")]
    issue = [c for c in upserts if c["node"] == "issue:gitlab:101"]
    assert issue[-1]["changed"] == ["closed_at", "state", "updated_at"]  # issue.closed
    firsts = {}
    for change in upserts:
        firsts.setdefault(change["node"], change)
    assert all("changed" not in c for c in firsts.values()), [c["node"] for c in firsts.values()
                                                               if "changed" in c]
