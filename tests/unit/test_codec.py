"""Decoding canonical events: clear reasons for bad input, upcasting of older shapes."""

from __future__ import annotations

import json

import msgspec
import pytest

from events.codec import decode_event, encode_event, event_json_schema
from events.errors import InvalidEvent
from events.types import EVENT_TYPES, IssueOpened
from events.upcast import Upcasters
from tests.support.issues import make_issue

GOOD = json.loads(encode_event(make_issue(1)))


def raw(**changes) -> bytes:
    data = {**GOOD, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


@pytest.mark.parametrize(
    ("body", "reason", "says"),
    [
        (b"not json", "not_json", "not valid JSON"),
        (b'{"type": "issue.opened", ', "not_json", "not valid JSON"),
        (b"[1, 2]", "schema", "JSON object"),
        (raw(event_id=...), "no_event_id", "event_id"),
        (raw(event_id=""), "no_event_id", "event_id"),
        (raw(type="issue.exploded"), "unknown_type", "issue.exploded"),
        (raw(type=...), "unknown_type", "None"),
        (raw(issue_id="12"), "schema", "$.issue_id"),
        (raw(occurred_at="2026-01-01T00:00:00"), "schema", "timezone"),
        (raw(source="Not A Token"), "schema", "$.source"),
        (raw(v=9), "schema", "newer than this code knows"),
    ],
)
def test_bad_input_gets_a_reason_and_a_message_naming_the_field(body, reason, says):
    """Each kind of bad input maps to one reason code and a precise message."""
    with pytest.raises(InvalidEvent) as e:
        decode_event(body)
    assert e.value.reason == reason
    assert says in e.value.detail


def test_oversized_input_is_refused_before_parsing():
    """The size limit is checked first and named with its setting."""
    with pytest.raises(InvalidEvent, match="FLEET_MAX_EVENT_BYTES") as e:
        decode_event(raw(description="x" * 5000), max_bytes=1000)
    assert e.value.reason == "oversized"


def test_unknown_extra_fields_are_ignored_for_forward_compatibility():
    """A producer newer than us may add fields; the event still decodes."""
    event = decode_event(raw(new_field={"a": 1}))
    assert isinstance(event, IssueOpened)


def test_an_older_event_shape_is_upcast_on_read():
    """A v1 issue.opened with `labels` (names) decodes through a registered v1->v2 step."""
    upcasters = Upcasters()

    @upcasters.register("issue.opened", 1)
    def labels_to_ids(data):
        data["label_ids"] = [int(x) for x in data.pop("labels", [])]
        return data

    # the current struct still says v=1 by default; the registry says v2 is current
    old = raw(labels=["3", "5"], v=1)
    event = decode_event(old, upcasters=upcasters)
    assert event.label_ids == [3, 5]
    assert event.v == 2
    # events already at the current version skip the slow path
    assert decode_event(raw(v=2, label_ids=[9]), upcasters=upcasters).label_ids == [9]


def test_every_event_type_round_trips_and_is_in_the_schema():
    """The JSON Schema documents every tag the decoder accepts."""
    schema = event_json_schema()
    text = json.dumps(schema)
    for tag in EVENT_TYPES:
        assert f'"{tag}"' in text
    event = make_issue(3)
    assert decode_event(encode_event(event)) == event
    assert msgspec.json.decode(encode_event(event))["type"] == "issue.opened"
