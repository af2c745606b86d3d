"""Decode and encode canonical events.

Decoding is the validation gate of the whole fleet: input that is not JSON,
not an object, has no event id, names an unknown type, breaks the schema or is
over the size limit raises :class:`~events.errors.InvalidEvent` with a reason
code and a message that names the field and the fix. Encoders and decoders are
built once, at import.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from .errors import InvalidEvent
from .limits import DEFAULT_MAX_EVENT_BYTES
from .types import EVENT_TYPES, AnyEvent, Event
from .upcast import UPCASTERS, Upcasters

__all__ = ["DEFAULT_MAX_EVENT_BYTES", "MAX_DEPTH", "check_depth", "decode_event", "encode_event",
           "event_json_schema"]

#: deepest JSON nesting accepted anywhere (objects and arrays; the event itself is level 1)
MAX_DEPTH = 100

_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")

_decoder = msgspec.json.Decoder(AnyEvent)
_any_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


def encode_event(event: Event) -> bytes:
    """Canonical JSON bytes of an event (the form producers publish)."""
    return _encoder.encode(event)


def check_depth(raw: bytes | str, limit: int = MAX_DEPTH) -> None:
    """Raise ``InvalidEvent("too_deep")`` when ``raw`` nests objects or arrays past ``limit``.

    Decoders recurse per level, so this runs first. Fewer brackets than the
    limit cannot nest past it: the scan (strings blanked, then brackets only)
    runs for the rare input with many.
    """
    data = raw.encode() if isinstance(raw, str) else raw
    if data.count(b"[") + data.count(b"{") <= limit:
        return
    depth = 0
    for m in _BRACKETS.finditer(_STRINGS.sub(b'""', data)):
        if m.group() in (b"[", b"{"):
            depth += 1
            if depth > limit:
                raise InvalidEvent("too_deep", f"JSON nested deeper than {limit} levels"
                                   f" (objects and arrays) - flatten the payload")
        else:
            depth -= 1


def decode_event(
    raw: bytes | str,
    *,
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    upcasters: Upcasters = UPCASTERS,
) -> Event:
    """Validate ``raw`` and return the event it holds, upcast to the current shape."""
    if len(raw) > max_bytes:
        raise InvalidEvent(
            "oversized",
            f"event is {len(raw)} bytes, over the limit of {max_bytes} bytes "
            "(FLEET_MAX_EVENT_BYTES)",
        )
    check_depth(raw)
    try:
        event = _decoder.decode(raw)
    except msgspec.ValidationError as e:
        return _decode_slow(raw, upcasters, str(e))
    except msgspec.DecodeError as e:
        raise InvalidEvent("not_json", f"body is not valid JSON: {e}") from e
    if event.v != upcasters.current_version(event.__struct_config__.tag):
        return _decode_slow(raw, upcasters, None)
    return event


def _decode_slow(raw: bytes | str, upcasters: Upcasters, first_error: str | None) -> Event:
    """Explain a failed decode precisely, or upcast an older shape."""
    try:
        data: Any = _any_decoder.decode(raw)
    except msgspec.DecodeError as e:  # pragma: no cover - fast path saw JSON already
        raise InvalidEvent("not_json", f"body is not valid JSON: {e}") from e
    if not isinstance(data, dict):
        raise InvalidEvent("schema", f"expected a JSON object, got {type(data).__name__}")
    event_id = data.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        raise InvalidEvent("no_event_id", "`event_id` is missing or empty - set a unique id per event")
    event_type = data.get("type")
    if event_type not in EVENT_TYPES:
        raise InvalidEvent(
            "unknown_type",
            f"unknown event type {event_type!r} - `fleet schema events` lists the known types",
        )
    current = upcasters.current_version(event_type)
    version = data.get("v", 1)
    if not isinstance(version, int) or version > current:
        raise InvalidEvent(
            "schema",
            f"{event_type} version {version!r} is newer than this code knows ({current}) "
            "- upgrade graphfleet, then `fleet quarantine retry`",
        )
    try:
        return msgspec.convert(upcasters.upcast(data), AnyEvent)
    except msgspec.ValidationError as e:
        raise InvalidEvent("schema", first_error or str(e)) from e


def event_json_schema() -> dict[str, Any]:
    """The JSON Schema of every canonical event (``fleet schema events``)."""
    return msgspec.json.schema(AnyEvent)
