"""Shared pieces of the webhook adapters: the result type, timestamps, event ids.

Event ids
---------
A webhook maps to an ordered list of canonical events; event number ``i`` of
that list gets the id::

    uuid5(NAMESPACES[source], f"{key}:{i}")

where ``key`` is the delivery id when the caller has one (GitHub's
``X-GitHub-Delivery``, GitLab's ``Idempotency-Key``, both unchanged when the
platform redelivers) and otherwise the hex SHA-256 of the payload re-encoded as
canonical JSON (keys sorted, no whitespace). A redelivered webhook or a
re-imported file therefore maps to the same ids, and the log's unique event id
turns the repeat into a no-op. Ids are stable for one adapter version: a change
to what a payload maps to may shift the index of later events.

Time
----
``occurred_at`` must be deterministic, so it never comes from the clock. It is
the first timestamp the payload gives for the object itself (``updated_at``,
``created_at`` ...), else ``received_at`` when the caller passes the recorded
delivery time, else a timestamp of the surrounding payload (a repository's
``pushed_at``), else the payload is rejected with :class:`InvalidEvent`.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from ..codec import decode_event, encode_event
from ..errors import InvalidEvent
from ..types import Actor, Context, Event, LabelCreated

if TYPE_CHECKING:
    from .payload import Node

__all__ = [
    "NAMESPACES",
    "Builder",
    "Undated",
    "Mapped",
    "Pending",
    "construct",
    "event_id",
    "ignored",
    "parse_timestamp",
    "payload_digest",
]

#: uuid5 namespace per source, so GitLab and GitHub delivery ids never collide.
NAMESPACES: dict[str, uuid.UUID] = {
    source: uuid.uuid5(uuid.NAMESPACE_URL, f"urn:graphfleet:webhook:{source}")
    for source in ("gitlab", "github")
}

E = TypeVar("E", bound=Event)
S = TypeVar("S", bound=msgspec.Struct)
Candidate = tuple["Node", str]
#: Events a mapping decided on, not yet stamped: (event class, its own fields).
Pending = list[tuple[type[Event], dict[str, Any]]]

# GitLab writes "2013-12-03 17:15:43 UTC" and "2013-12-03 17:15:43 +0100";
# both platforms also send ISO 8601 with "Z" or an offset, and fractions.
_TIMESTAMP = re.compile(
    r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"\s*(Z|UTC|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)
_canonical_json = msgspec.json.Encoder(order="sorted")


class Undated(InvalidEvent):
    """A payload with no timestamp for its event, mapped without ``received_at``:
    mapping it again with the recorded delivery time succeeds."""


class Mapped(msgspec.Struct, frozen=True, kw_only=True):
    """What a webhook maps to: canonical events, or the reason it maps to none."""

    events: list[Event] = []
    ignored: str | None = None
    #: context facts the payload got wrong and that were left out (see :mod:`.facts`)
    context_skipped: int = 0


def ignored(reason: str) -> Mapped:
    """A webhook that deliberately maps to no event, and why."""
    return Mapped(ignored=reason)


def parse_timestamp(value: str | int | float) -> datetime:
    """Parse any timestamp GitLab or GitHub sends into an aware UTC datetime.

    Accepts ISO 8601 with ``Z`` or an offset (fractions allowed), GitLab's
    ``2013-12-03 17:15:43 UTC`` and ``2013-12-03 17:15:43 +0100``, and epoch
    seconds (GitHub's push ``repository.created_at``). A time without a zone is
    taken as UTC, which is what both platforms store. Raises ``ValueError``.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a timestamp, got {value!r}")
    if isinstance(value, (int, float)):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError) as e:
            raise ValueError(f"epoch seconds {value!r} are out of range") from e
    match = _TIMESTAMP.fullmatch(value.strip())
    if match is None:
        raise ValueError(
            f"unrecognised timestamp {value!r} - expected ISO 8601 "
            "(2013-12-03T17:15:43Z), '2013-12-03 17:15:43 UTC' or epoch seconds"
        )
    date, clock, seconds, fraction, zone = match.groups()
    clock += f":{seconds or '00'}"
    if fraction is not None:
        # fromisoformat takes at most microseconds.
        clock += "." + (fraction + "000000")[:6]
    if zone is None or zone.upper() in ("Z", "UTC"):
        zone = "+00:00"
    elif len(zone) == 3:
        zone += ":00"
    try:
        parsed = datetime.fromisoformat(f"{date}T{clock}{zone}")
    except ValueError as e:
        raise ValueError(f"invalid timestamp {value!r}: {e}") from e
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise ValueError(f"timestamp {value!r} is out of range once converted to UTC "
                         "(years 1 to 9999)") from None


def payload_digest(payload: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the payload as canonical JSON (sorted keys, no whitespace)."""
    try:
        raw = _canonical_json.encode(payload)
    except (TypeError, msgspec.EncodeError) as e:
        raise InvalidEvent("schema", f"payload is not JSON-serialisable: {e}") from e
    return hashlib.sha256(raw).hexdigest()


def construct(cls: type[S], **fields: Any) -> S:
    """``cls(**fields)`` for values read from a payload: a check of the Struct's own
    (``__post_init__``) fails as :class:`InvalidEvent` ``schema``, not as a bug."""
    try:
        return cls(**fields)
    except ValueError as e:  # msgspec.ValidationError is a ValueError too
        tag = cls.__struct_config__.tag or cls.__name__
        raise InvalidEvent("schema", f"{tag} built from this payload: {e}") from e


def event_id(source: str, key: str, index: int) -> str:
    """The deterministic id of event ``index`` of the webhook identified by ``key``."""
    return str(uuid.uuid5(NAMESPACES[source], f"{key}:{index}"))


class Builder:
    """Collects the canonical events of one webhook and stamps their common fields."""

    def __init__(
        self,
        source: str,
        payload: Mapping[str, Any],
        *,
        delivery_id: str | None,
        received_at: datetime | None,
    ) -> None:
        if received_at is not None and received_at.utcoffset() is None:
            raise ValueError("received_at must be timezone-aware")
        self.source = source
        self.key = delivery_id or payload_digest(payload)
        self.received_at = received_at.astimezone(UTC) if received_at else None
        self.actor: Actor | None = None
        #: context facts, carried by the webhook's first event, and how many were left out
        self.context: Context | None = None
        self.context_skipped = 0
        self.occurred_at: datetime | None = None
        self.events: list[Event] = []

    def when(self, *own: Candidate, fallback: Sequence[Candidate] = ()) -> datetime:
        """Fix ``occurred_at``: own timestamps, then ``received_at``, then the fallbacks."""
        for node, key in own:
            if (found := node.time(key)) is not None:
                self.occurred_at = found
                return found
        if self.received_at is not None:
            self.occurred_at = self.received_at
            return self.received_at
        for node, key in fallback:
            if (found := node.time(key)) is not None:
                self.occurred_at = found
                return found
        tried = ", ".join(f"`{node.at(key)}`" for node, key in (*own, *fallback))
        where = f"none of {tried} is set" if tried else "the payload carries none for this event"
        raise Undated(
            "schema",
            f"no timestamp to date the event: {where} - "
            "pass received_at, the recorded delivery time, to the adapter",
        )

    def emit(self, cls: type[E], **fields: Any) -> E:
        """Append one canonical event; ``when`` must have been called first."""
        if self.occurred_at is None:
            raise RuntimeError("Builder.when() must run before emit()")
        event = construct(
            cls,
            event_id=event_id(self.source, self.key, len(self.events)),
            source=self.source,
            occurred_at=self.occurred_at,
            actor=self.actor,
            context=None if self.events else self.context,
            **fields,
        )
        self.events.append(event)
        return event

    def finish(
        self,
        pending: Pending,
        *,
        if_empty: str | None = None,
        labels: Mapping[int, dict[str, Any]] | None = None,
    ) -> Mapped:
        """Emit ``pending``, preceded by ``label.created`` for each label it references.

        ``labels`` maps a label id to the fields of its ``label.created``;
        platforms without label webhooks (GitLab) make issue payloads the only
        place a label's title is seen, and the projection upserts it.
        """
        if labels and pending:
            referenced: dict[int, None] = {}
            for _, fields in pending:
                for label_id in (*fields.get("label_ids", ()), fields.get("label_id")):
                    if label_id in labels:
                        referenced[label_id] = None
            for label_id in referenced:
                self.emit(LabelCreated, **labels[label_id])
        for cls, fields in pending:
            self.emit(cls, **fields)
        return self.result(if_empty)

    def result(self, if_empty: str | None = None) -> Mapped:
        """The events, each checked against the canonical schema; ``if_empty`` if none.

        ``if_empty`` is the "ignored" reason; a mapping that always yields
        events leaves it out, and yielding none then is a bug.
        """
        if not self.events:
            if not if_empty:
                raise RuntimeError("a mapping produced no event and gave no reason")
            return ignored(if_empty)
        for event in self.events:
            # Struct constructors do not check constraints (lengths, ranges);
            # a round trip through the codec does, so bad values fail here
            # with the payload at hand rather than later in the ingest worker.
            try:
                decode_event(encode_event(event))
            except InvalidEvent as e:
                tag = event.__struct_config__.tag
                raise InvalidEvent(e.reason, f"{tag} built from this payload: {e.detail}") from e
        return Mapped(events=list(self.events), context_skipped=self.context_skipped)
