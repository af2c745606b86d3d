"""Stamps that order updates by time, whatever their arrival order (README "Order").

A stamp is an int: the event's ``occurred_at`` in microseconds since year 1,
plus :data:`OWN` for what an object's own events say (context facts and the
actor's names have none, so they stay beneath). Ties go to the event applied
later, which is the later log position: no position needs storing.

Per node of a stamped type (every type with derived keys: groups, projects,
users, issues, merge requests, labels, milestones) one map, kept in the
lookup table under ``t`` + the node key (not in the properties, so the
digest, the export and the change records never see it)::

    {"p": {property: stamp},                 # the last write of each property
     "e": {edge code: {other end: ±stamp}},  # each out-edge's last add (+) or removal (-)
     "c": {edge code: stamp}}                # the last CLEAR of that edge type

(keys as text: the edge code in decimal, the other end's key as latin-1, so
that the map encodes with sorted keys and both paths write the same bytes).

The functions here decide; :class:`~projections.fold.overlay.Overlay` and the
fold engine's :class:`~projections.fold.engine.state.Segment` call them the
same way, so both paths keep the same maps.
"""

from __future__ import annotations

from datetime import UTC, datetime

from projections.model.indexing import BLIND_CODES
from projections.model.ontology import EDGE_TYPES
from projections.store.writeset import decode_props, encode_props

__all__ = [
    "OWN",
    "STAMPED",
    "STAMPED_EDGES",
    "at",
    "clear",
    "decode",
    "encode",
    "may_link",
    "may_unlink",
    "stamp_key",
    "winners",
]

#: added to the stamp of what an object's own events say (context facts have none)
OWN = 1 << 59
_YEAR_1 = datetime(1, 1, 1, tzinfo=UTC)
_MICRO = datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _YEAR_1
#: the node type codes whose nodes carry stamps (blind types keep arrival order)
STAMPED = frozenset(range(256)) - BLIND_CODES
#: the edge types something removes (UNLINK, CLEAR, ATTACH): the others are only ever
#: added (authorship, forks, merges ...), where the order cannot matter
STAMPED_EDGES = frozenset(
    e.code for e in EDGE_TYPES
    if e.name not in ("AUTHORED", "PUSHED", "FORKED_FROM", "FROM_REF", "MERGED_AS", "COMMENTED_ON",
                      "TRANSFERRED_TO"))
_NO_STAMPS: dict = {}

encode = encode_props


def decode(raw: bytes | None) -> dict:
    """A node's stamp map from its stored bytes (empty when it has none yet)."""
    return {} if raw is None else decode_props(raw)


def at(occurred_at: datetime, own: bool) -> int:
    """The stamp of an event: its time, above every context stamp when ``own``."""
    micros = (occurred_at - _YEAR_1) // _MICRO
    return micros + OWN if own else micros


def stamp_key(node: bytes) -> bytes:
    """The lookup-table key of a node's stamp map."""
    return b"t" + node


def winners(st: dict, now: int, props: dict) -> dict:
    """The properties of ``props`` that ``now`` may write (not older than their last
    write), their stamps moved to ``now``."""
    stamps = st.get("p")
    if stamps is None:
        stamps = st["p"] = {}
    won = {}
    for k, v in props.items():
        if now >= stamps.get(k, 0):
            stamps[k] = now
            won[k] = v
    return won


_EDGE_NAMES = [str(code) for code in range(256)]


def _members(st: dict, edge: int) -> dict:
    edges = st.get("e")
    if edges is None:
        edges = st["e"] = {}
    name = _EDGE_NAMES[edge]
    found = edges.get(name)
    if found is None:
        found = edges[name] = {}
    return found


def may_link(st: dict, now: int, edge: int, other: bytes) -> bool:
    """Whether an add of ``edge`` to ``other`` at ``now`` wins (then recorded)."""
    members = _members(st, edge)
    end = other.decode("latin-1")
    if now < abs(members.get(end, 0)) or now < st.get("c", _NO_STAMPS).get(_EDGE_NAMES[edge], 0):
        return False
    members[end] = now
    return True


def may_unlink(st: dict, now: int, edge: int, other: bytes) -> bool:
    """Whether a removal of ``edge`` to ``other`` at ``now`` wins (then recorded, edge or not)."""
    members = _members(st, edge)
    end = other.decode("latin-1")
    if now < abs(members.get(end, 0)):
        return False
    members[end] = -now
    return True


def clear(st: dict, now: int, edge: int, present: list[bytes]) -> list[bytes]:
    """A CLEAR of ``edge`` at ``now``: which of the ``present`` ends go (added no later),
    and later adds older than ``now`` are refused from now on."""
    cleared = st.get("c")
    if cleared is None:
        cleared = st["c"] = {}
    name = _EDGE_NAMES[edge]
    if now > cleared.get(name, 0):
        cleared[name] = now
    members = _members(st, edge)
    gone = []
    for other in present:
        end = other.decode("latin-1")
        if abs(members.get(end, 0)) <= now:
            members[end] = -now
            gone.append(other)
    return gone
