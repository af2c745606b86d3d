"""The validation gate: what it accepts the fold can apply, what it refuses it names, and
event ids that differ keep distinct uniqueness keys."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.codec import MAX_DEPTH, check_depth, decode_event
from events.errors import InvalidEvent
from events.logrows import id_key
from events.types import EVENT_TYPES
from projections.fold.memory import MemoryGraph

_VALID = {"type": "user.created", "event_id": "e-1", "source": "gitlab",
          "occurred_at": "2026-01-01T00:00:00Z", "user_id": 1, "username": "ada"}


def _reason(**changes) -> str | None:
    data = {k: v for k, v in {**_VALID, **changes}.items() if v is not None}
    try:
        decode_event(json.dumps(data))
    except InvalidEvent as e:
        return e.reason
    return None


# --- event ids -----------------------------------------------------------------------------

def test_a_near_uuid_and_the_text_its_digits_spell_keep_distinct_keys():
    """The reported collision: a 36-character id whose hex digits spell another id."""
    assert id_key("41414141-4141-4141-4141-4141414141--") != id_key("AAAAAAAAAAAAAAA")


def test_only_uuids_are_packed_and_compared_without_case():
    """A UUID takes 16 bytes whatever its case; one padded, spaced or undashed is another id."""
    u = str(uuid.uuid4())
    assert id_key(u) == id_key(u.upper()) == uuid.UUID(u).bytes
    for other in (u[:9] + " " + u[10:], " " + u[1:], u.replace("-", ""), u[:35] + "g"):
        assert len(id_key(other)) != 16
        assert id_key(other) != id_key(u)


def _same_id(a: str, b: str) -> bool:
    """README: ids are equal as text, except UUIDs, compared case-insensitively."""
    def is_uuid(x: str) -> bool:
        try:
            return str(uuid.UUID(x)) == x.lower()
        except ValueError:
            return False
    return a == b or (is_uuid(a) and is_uuid(b) and a.lower() == b.lower())


_uuidish = st.builds(
    lambda h, swaps: "-".join((h[:8], h[8:12], h[12:16], h[16:20], h[20:])).translate(swaps),
    st.text("0123456789abcdefABCDEF -", min_size=32, max_size=32),
    st.sampled_from([{}, {ord("a"): "A"}, {ord("0"): "-"}, {ord("1"): " "}]),
)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.text(max_size=40), _uuidish, st.uuids().map(str)),
       st.one_of(st.text(max_size=40), _uuidish, st.uuids().map(str)))
def test_distinct_ids_have_distinct_keys(a, b):
    """For any two event ids README calls distinct, the log's uniqueness keys differ."""
    assert (id_key(a) == id_key(b)) == _same_id(a, b)


# --- nesting -------------------------------------------------------------------------------

def test_deep_nesting_has_its_own_reason():
    """10,000 levels are refused as too_deep, not an internal RecursionError."""
    assert _reason(extra=None) is None
    deep = json.dumps(_VALID)[:-1] + ', "extra": ' + "[" * 10_000 + "]" * 10_000 + "}"
    with pytest.raises(InvalidEvent) as err:
        decode_event(deep)
    assert err.value.reason == "too_deep"
    with pytest.raises(InvalidEvent, match="too_deep"):
        check_depth("{" * 200_000)


def test_unknown_fields_are_accepted_up_to_the_nesting_limit():
    """An unknown field nested just under the limit is ignored, as README promises."""
    nested = json.dumps(_VALID)[:-1] + ', "extra": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}"
    assert decode_event(nested).event_id == "e-1"
    strings = json.dumps({**_VALID, "extra": "[" * 5_000})  # brackets in a string are text
    assert decode_event(strings).event_id == "e-1"


# --- what cannot be meant ------------------------------------------------------------------

@pytest.mark.parametrize("changes", [
    {"v": 0},
    {"v": -3},
    {"source": "gitlab\n"},
    {"occurred_at": "0001-01-01T00:00:00+23:59"},
    {"occurred_at": "9999-12-31T23:59:59-23:59"},
    {"user_id": 2**64},
    {"user_id": 2**63},
    {"type": "member.added", "username": None},
    {"type": "member.removed", "username": None},
], ids=lambda c: ",".join(f"{k}={v!r}" for k, v in c.items()))
def test_the_validator_refuses_what_cannot_be_applied(changes):
    """Each of these was accepted, logged, then broke a publish, the projector or a rebuild."""
    assert _reason(**changes) == "schema"


# --- validation and apply, held together ----------------------------------------------------

_EXTREME_TIMES = [
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=23, minutes=59))),
    datetime(1, 1, 1, 23, 59, tzinfo=timezone(-timedelta(hours=23, minutes=59))),
    datetime(9999, 12, 31, 23, 59, tzinfo=timezone(-timedelta(hours=23, minutes=59))),
    datetime(9999, 12, 31, tzinfo=timezone.utc),
]


def _values(t: msgspec.inspect.Type) -> st.SearchStrategy:
    """JSON values for a schema type: mostly inside its constraints, often at or past them."""
    i = msgspec.inspect
    if isinstance(t, i.IntType):
        edges = [v for v in (t.ge, t.le, -1, 0, 1, 2**63, 2**64) if v is not None]
        return st.one_of(st.integers(0, 50), st.sampled_from(edges), st.integers())
    if isinstance(t, i.StrType):
        edges = ["", "x", "gitlab", "github", "gitlab\n", " ", "é" * 3, "#1 !2 g/p#3"]
        options = [st.sampled_from(edges), st.text(max_size=12)]
        if t.pattern:
            options.append(st.from_regex(t.pattern, fullmatch=True))
        if t.max_length:
            options.append(st.just("a" * (t.max_length + 1)))
        return st.one_of(*options)
    if isinstance(t, i.DateTimeType):
        aware = st.datetimes(timezones=st.sampled_from(
            [timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=23))]))
        return st.one_of(aware, st.sampled_from(_EXTREME_TIMES)).map(lambda d: d.isoformat())
    if isinstance(t, i.BoolType):
        return st.booleans()
    if isinstance(t, i.NoneType):
        return st.none()
    if isinstance(t, i.LiteralType):
        return st.one_of(st.sampled_from(t.values), st.text(max_size=6))
    if isinstance(t, i.UnionType):
        return st.one_of(*(_values(member) for member in t.types))
    if isinstance(t, (i.ListType, i.VarTupleType, i.SetType, i.FrozenSetType)):
        return st.lists(_values(t.item_type), max_size=3)
    if isinstance(t, i.StructType):
        return _objects(t)
    raise AssertionError(f"no strategy for {t!r}: add one")  # a new field type needs one


def _objects(t: msgspec.inspect.StructType) -> st.SearchStrategy:
    required = {f.encode_name: _values(f.type) for f in t.fields if f.required}
    optional = {f.encode_name: _values(f.type) for f in t.fields if not f.required}
    return st.fixed_dictionaries(required, optional=optional)


_EVENTS = {tag: _objects(msgspec.inspect.type_info(cls)).map(lambda d, tag=tag: {"type": tag, **d})
           for tag, cls in EVENT_TYPES.items()}


@pytest.mark.parametrize("tag", sorted(EVENT_TYPES))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_what_validation_accepts_the_fold_applies(tag, data):
    """An event that passes validation can always be applied (DESIGN invariant 10)."""
    raw = json.dumps(data.draw(_EVENTS[tag]))
    try:
        event = decode_event(raw)
    except InvalidEvent:
        return
    MemoryGraph().apply_events([event], precise=True)
