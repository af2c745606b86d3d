"""The graph-change contract downstream services consume (schema version 1).

One JSON object per JetStream message on the ``GRAPH`` stream, subject
``graph.<projection>.<kind>`` with ``kind`` one of ``node.upserted``,
``node.deleted``, ``edge.added``, ``edge.updated``, ``edge.removed``,
``rebuilt``; header ``Nats-Msg-Id: <projection>@v<version>:<seq>``, and
``traceparent`` when the causing event was traced.

Compatibility: fields are only ever added (with defaults); ``seq`` is dense
per ``(projection, version)`` and starts at 1 with the version's ``rebuilt``
notice when it was built by a replay; a consumer that sees ``seq`` at or
below the last it applied for that version drops the message as a repeat.

Every change carries the full state it leaves behind (a node's properties,
an edge's properties), so applying one twice, or applying the changes that
follow a ``rebuilt`` notice on top of the previous version's copy, converges
on the new version. Changes with ``diff: true`` were not caused by one log
event: ``fleet replay graph --emit-diff`` computed them (old version -> new
version) right after the ``rebuilt`` notice they follow.
"""

from __future__ import annotations

from typing import Any, Union

import msgspec
from msgspec import Struct

__all__ = [
    "CHANGE_SCHEMA_VERSION",
    "AnyChange",
    "Change",
    "EdgeAdded",
    "EdgeRemoved",
    "EdgeUpdated",
    "NodeDeleted",
    "NodeUpserted",
    "Rebuilt",
    "change_from_record",
    "change_json_schema",
    "change_msg_id",
    "change_subject",
    "decode_change",
    "encode_change",
    "parse_msg_id",
]

CHANGE_SCHEMA_VERSION = 1


class Change(Struct, frozen=True, kw_only=True, tag_field="kind", omit_defaults=True):
    """Fields every graph-change event carries."""

    schema: int = CHANGE_SCHEMA_VERSION
    projection: str
    version: int
    seq: int
    position: int
    event_id: str | None = None
    occurred_at: str | None = None
    diff: bool = False  # true: emitted by --emit-diff after `rebuilt`, not caused by one event


class NodeUpserted(Change, tag="node_upserted"):
    """A node was created or its properties changed: ``props`` is the full new state."""

    node: str
    node_type: str
    props: dict[str, Any]
    changed: list[str] | None = None  # names of the properties that changed; None = new node


class NodeDeleted(Change, tag="node_deleted"):
    """A node and (by earlier edge_removed changes) its incident edges are gone."""

    node: str
    node_type: str
    props: dict[str, Any] = {}  # the state before deletion


class EdgeAdded(Change, tag="edge_added"):
    """An edge appeared: ``props`` are its properties (empty for most edge types)."""

    src: str
    edge: str
    dst: str
    props: dict[str, Any] = {}


class EdgeUpdated(Change, tag="edge_updated"):
    """An existing edge's properties changed: ``props`` is the full new state."""

    src: str
    edge: str
    dst: str
    props: dict[str, Any] = {}


class EdgeRemoved(Change, tag="edge_removed"):
    """An edge is gone."""

    src: str
    edge: str
    dst: str
    props: dict[str, Any] = {}


class Rebuilt(Change, tag="rebuilt"):
    """A new version was promoted: resync from it, or apply the diff that follows."""

    previous: int | None = None
    digest: str | None = None


AnyChange = Union[NodeUpserted, NodeDeleted, EdgeAdded, EdgeUpdated, EdgeRemoved, Rebuilt]
_BY_KIND: dict[str, type[Change]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (NodeUpserted, NodeDeleted, EdgeAdded, EdgeUpdated, EdgeRemoved, Rebuilt)
}
_FIELDS = {cls: frozenset(cls.__struct_fields__) for cls in _BY_KIND.values()}
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyChange)


def encode_change(change: Change) -> bytes:
    """JSON bytes of a change event."""
    return _encoder.encode(change)


def decode_change(data: bytes) -> Change:
    """Parse a change event (downstream services may use this, or any JSON parser)."""
    return _decoder.decode(data)


def change_subject(projection: str, kind: str, prefix: str = "graph") -> str:
    """``graph.<projection>.node.upserted`` etc."""
    return f"{prefix}.{projection}.{kind.replace('_', '.')}"


def change_msg_id(projection: str, version: int, seq: int) -> str:
    """The ``Nats-Msg-Id`` of a change: ``<projection>@v<version>:<seq>``."""
    return f"{projection}@v{version}:{seq}"


def parse_msg_id(msg_id: str | None) -> tuple[str, int, int] | None:
    """``(projection, version, seq)`` of a change's ``Nats-Msg-Id`` (None if not one)."""
    if not msg_id:
        return None
    projection, at, rest = msg_id.rpartition("@v")
    version, colon, seq = rest.partition(":")
    if not (at and colon and version.isdigit() and seq.isdigit()):
        return None
    return projection, int(version), int(seq)


def change_from_record(record: dict[str, Any], *, projection: str, version: int,
                       event_id: str | None = None, occurred_at: str | None = None) -> Change:
    """The contract Struct of one outbox record (see :mod:`projections.model.records`).

    Record keys the contract does not know are left out, so the outbox may
    carry more than the wire does.
    """
    kind = record.get("kind")
    cls = _BY_KIND.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise ValueError(f"outbox record {record.get('seq')} has unknown kind {kind!r}"
                         f" - expected one of {', '.join(_BY_KIND)}")
    names = _FIELDS[cls]
    fields = {k: v for k, v in record.items() if k in names}
    fields["projection"] = projection
    fields["version"] = version
    fields.setdefault("position", 0)
    if event_id is not None:
        fields["event_id"] = event_id
    if occurred_at is not None:
        fields["occurred_at"] = occurred_at
    return cls(**fields)


def change_json_schema() -> dict[str, Any]:
    """JSON Schema of every change event (``fleet schema changes``)."""
    return msgspec.json.schema(AnyChange)
