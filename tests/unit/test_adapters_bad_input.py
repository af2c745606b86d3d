"""Webhook adapters on bad input: every value out of range is InvalidEvent naming its path, never a crash."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from events.adapters import map_github, map_gitlab, parse_timestamp
from events.adapters.common import construct
from events.adapters.payload import ID_MAX, Node, decode_payload
from events.errors import InvalidEvent
from events.types import Commit
from tests.support.paths import WEBHOOK_FIXTURES

GITLAB_EVENTS = {"issue_hook.json": "Issue Hook", "merge_request_hook.json": "Merge Request Hook",
                 "note_hook_issue.json": "Note Hook", "push_hook.json": "Push Hook",
                 "system_project_create.json": "System Hook"}
OVERFLOWING = ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "9999-12-31 23:59:59 -2359"]


def saved_payloads() -> list[tuple[Any, str, dict]]:
    """(adapter, event name, payload) of every saved webhook."""
    out = [(map_gitlab, header, json.loads((WEBHOOK_FIXTURES / "gitlab" / name).read_text()))
           for name, header in GITLAB_EVENTS.items()]
    out += [(map_github, path.parent.name, json.loads(path.read_text()))
            for path in sorted((WEBHOOK_FIXTURES / "github" / "examples").rglob("*.json"))]
    return out


def leaves(value: Any, path: tuple = ()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from leaves(item, (*path, i))
    else:
        yield path, value


def with_value(payload: dict, path: tuple, value: Any) -> dict:
    changed = copy.deepcopy(payload)
    parent = changed
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return changed


@pytest.mark.parametrize("value", OVERFLOWING)
def test_a_time_past_utc_range_is_a_value_error_naming_it(value):
    """parse_timestamp refuses a time that overflows once converted to UTC, as it refuses others."""
    with pytest.raises(ValueError, match="out of range once converted to UTC") as raised:
        parse_timestamp(value)
    assert repr(value) in str(raised.value)


def test_ids_past_the_canonical_bound_name_the_payload_path():
    """An id above 2**63-1 (or below 0) is refused where the payload holds it, with its value."""
    node = Node({"id": ID_MAX + 1, "ids": [1, -5], "huge": 10**60}, "$.issue")
    with pytest.raises(InvalidEvent) as raised:
        node.id("id")
    assert raised.value.detail == f"Expected `int` <= {ID_MAX}, got {ID_MAX + 1} - at `$.issue.id`"
    with pytest.raises(InvalidEvent, match=r"Expected `int` >= 0, got -5 - at `\$.issue.ids\[1\]`"):
        node.ids("ids")
    with pytest.raises(InvalidEvent, match=r"got 10000000000000000000\.\.\. \(61 digits\)"):
        node.id("huge")
    assert Node({"id": ID_MAX}).id("id") == ID_MAX


def test_a_struct_check_failing_on_payload_values_is_invalid_event():
    """A canonical Struct's own check (a time past UTC) fails as InvalidEvent schema, not ValueError."""
    late = datetime(9999, 12, 31, 23, 59, tzinfo=timezone(-timedelta(hours=23, minutes=59)))
    with pytest.raises(InvalidEvent) as raised:
        construct(Commit, sha="9fceb02", timestamp=late)
    assert raised.value.reason == "schema"
    assert raised.value.detail.startswith("Commit built from this payload: `timestamp` 9999-12-31")


def test_decode_payload_refuses_deep_nesting_huge_numbers_and_non_json():
    """Past 100 levels is too_deep before the decoder recurses; a 4,301-digit number is schema."""
    cases = {b"[" * 200_000 + b"]" * 200_000: "too_deep", b'{"id": ' + b"9" * 4301 + b"}": "schema",
             b"": "not_json", b'{"a": ': "not_json"}
    for body, reason in cases.items():
        with pytest.raises(InvalidEvent) as raised:
            decode_payload(body)
        assert raised.value.reason == reason, (body[:20], raised.value)
    assert decode_payload(b"[" * 100 + b"]" * 100) is not None


def test_every_id_and_time_of_the_saved_payloads_out_of_range_is_refused_cleanly():
    """Each integer of each saved payload set past 64 bits, and each timestamp set past UTC's
    range, either maps (the adapter does not read it) or raises InvalidEvent schema."""
    checked = refused = 0
    for adapter, event, payload in saved_payloads():
        for path, value in leaves(payload):
            if isinstance(value, bool):
                continue
            if isinstance(value, int):
                bad_values = [ID_MAX + 1, 2**64 + 1, 10**30]
            elif isinstance(value, str) and str(path[-1]).endswith(("_at", "timestamp", "_on")):
                bad_values = OVERFLOWING
            else:
                continue
            for bad in bad_values:
                checked += 1
                try:
                    adapter(event, with_value(payload, path, bad), delivery_id="d")
                except InvalidEvent as e:
                    assert e.reason == "schema", (event, path, bad, e)
                    refused += 1
    assert checked > 500 and refused > 100, (checked, refused)
