"""The graph-change contract downstream services consume (schema version 1).

One JSON object per JetStream message on the ``GRAPH`` stream, subject
``graph.<projection>.<kind>`` with ``kind`` one of ``node.upserted``,
``node.deleted``, ``edge.added``, ``edge.updated``, ``edge.removed``,
``rebuilt``, ``synced``; header ``Nats-Msg-Id: <projection>@v<version>:<seq>``, and
``traceparent`` when the causing event was traced.

Compatibility: fields are only ever added (with defaults); ``seq`` is dense
per ``(projection, version)`` and starts at 1 with the version's ``rebuilt``
notice when it was built by a replay; a consumer that sees ``seq`` at or
below the last it applied for that version drops the message as a repeat.

Every change carries the full state it leaves behind (a node's properties,
an edge's properties), so applying one twice, or applying the changes that
follow a ``rebuilt`` notice on top of the previous version's copy, converges
on the new version. Changes with ``coalesced: true`` stand for every event
from ``first_position`` to ``position``: a projector far behind the log folds
segments and sends each thing a segment changed once, in its final state
(edges removed, then nodes, then edges added or updated). Changes with ``diff: true`` were not caused by one log
event: a version change (a promotion or a rollback) computed them, old
version -> new version, after the ``rebuilt`` notice they follow; a ``synced``
change closes the version change with the digest a copy has there, or says
``resync`` when the difference was above the fleet's bound and was not sent.

The graph itself has a public form too: one canonical JSON line per node and
per edge (:func:`node_line`, :func:`edge_line`), what the export streams and
the digest sums (:mod:`projections.versions.digest`).
"""

from __future__ import annotations

from itertools import repeat
from typing import Annotated, Any, Union

import msgspec
from msgspec import Meta, Struct

__all__ = [
    "CHANGE_SCHEMA_VERSION",
    "JSON_SCHEMA_DIALECT",
    "NOTICE_KINDS",
    "AnyChange",
    "Change",
    "EdgeAdded",
    "EdgeRemoved",
    "EdgeUpdated",
    "NodeDeleted",
    "NodeUpserted",
    "Rebuilt",
    "Synced",
    "change_from_record",
    "change_json_schema",
    "change_msg_id",
    "change_subject",
    "decode_change",
    "edge_line",
    "edge_lines",
    "encode_change",
    "node_line",
    "node_lines",
    "parse_msg_id",
]

CHANGE_SCHEMA_VERSION = 1
#: the JSON Schema dialect of :func:`change_json_schema`
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: an RFC 3339 time (the log's ``occurred_at``: canonical events' times always carry an offset)
_Time = Annotated[str, Meta(extra_json_schema={"format": "date-time"})]


class Change(Struct, frozen=True, kw_only=True, tag_field="kind", omit_defaults=True):
    """Fields every graph-change event carries."""

    schema: int = CHANGE_SCHEMA_VERSION
    projection: str
    version: int
    seq: int
    position: int
    event_id: str | None = None
    occurred_at: _Time | None = None
    diff: bool = False  # true: emitted by --emit-diff after `rebuilt`, not caused by one event
    #: true: the net change of every event from ``first_position`` to ``position`` (a projector
    #: catching up folds a segment of the log at a time and sends what it changed, once)
    coalesced: bool = False
    first_position: int | None = None


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
    """A version change (promotion or rollback) from ``previous``: the diff and a ``synced`` follow.

    ``digest`` is the version's when it was built (informational: live changes
    may land before the diff; ``synced`` carries the digest to check a copy with).
    """

    previous: int | None = None
    digest: str | None = None


class Synced(Change, tag="synced"):
    """The version change the last ``rebuilt`` notice began is complete on the stream.

    Without ``resync``: the ``changes`` diff changes since the notice were the
    whole difference from ``previous``; a copy that applied every change of
    this version up to this one equals the version here, whose digest over
    nodes and edges is ``digest``. With ``resync``: the difference was larger
    than the fleet's bound (``changes`` is then a lower bound), or could not
    be computed, and was not sent: load the version's export (its ``seq`` is at
    or above this one) and follow on from there.
    """

    previous: int | None = None
    changes: int = 0
    resync: bool = False
    digest: str | None = None


AnyChange = Union[NodeUpserted, NodeDeleted, EdgeAdded, EdgeUpdated, EdgeRemoved, Rebuilt, Synced]
_BY_KIND: dict[str, type[Change]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (NodeUpserted, NodeDeleted, EdgeAdded, EdgeUpdated, EdgeRemoved, Rebuilt, Synced)
}
#: kinds that announce or close a version change: not caused by one log event
NOTICE_KINDS = frozenset({"rebuilt", "synced"})
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
    """JSON Schema 2020-12 of every change event (``fleet schema changes``).

    msgspec adds an OpenAPI ``discriminator`` to a tagged union; it is no
    JSON Schema keyword (strict validators refuse it), and each member's
    ``kind`` enum already tells the members apart, so it is dropped.
    """
    schema = msgspec.json.schema(AnyChange)
    schema.pop("discriminator", None)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": f"graphfleet graph-change event (schema {CHANGE_SCHEMA_VERSION})",
        "description": "One JSON object per message on the GRAPH stream, subject"
                       " graph.<projection>.<kind>; `kind` tells the members apart.",
        **schema,
    }


class _NodeLine(Struct, frozen=True, gc=False):
    """A node in the export and digest form (fields in sorted order)."""

    id: str
    props: dict[str, Any]
    type: str


class _EdgeLine(Struct, frozen=True, gc=False):
    """An edge in the export and digest form (fields in sorted order)."""

    dst: str
    edge: str
    props: dict[str, Any]
    src: str


_line_encoder = msgspec.json.Encoder(order="sorted")


def node_line(node: str, node_type: str, props: dict[str, Any]) -> bytes:
    """``{"id":...,"props":{...},"type":...}``: a node as the export and the digest write it.

    Canonical JSON: keys sorted at every level, no whitespace, UTF-8, strings
    escaped as ``JSON.stringify`` does; ``props`` as the change events carry
    them. README "Export and digest" defines it for other languages.
    """
    return _line_encoder.encode(_NodeLine(node, props, node_type))


def edge_line(src: str, edge: str, dst: str, props: dict[str, Any] | None) -> bytes:
    """``{"dst":...,"edge":...,"props":{...},"src":...}``: an edge as the export and the digest write it.

    An edge without properties has ``"props":{}`` (change events leave ``props`` out then).
    """
    return _line_encoder.encode(_EdgeLine(dst, edge, props or {}, src))


def node_lines(node_type: str, nodes: list[str], props: list[dict[str, Any]]) -> bytes:
    """:func:`node_line` of many nodes of one type, each line ending in a newline."""
    return _line_encoder.encode_lines(list(map(_NodeLine, nodes, props, repeat(node_type))))


def edge_lines(edge: str, srcs: list[str], dsts: list[str], props: list[dict[str, Any]] | None) -> bytes:
    """:func:`edge_line` of many edges of one type (``props`` None: none has any), newline-ended."""
    return _line_encoder.encode_lines(list(map(_EdgeLine, dsts, repeat(edge),
                                               repeat({}) if props is None else props, srcs)))
