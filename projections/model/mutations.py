"""The graph mutations the apply step emits: plain tuples, tagged by an int.

Tuples (not objects) because a rebuild handles millions of them and ships
them between processes as msgpack; :func:`describe` renders one for people.
The semantics, implemented by :class:`projections.fold.overlay.Overlay` and
the fold engine alike. On nodes of the stamped types (all but commits,
comments and refs) every write carries the stamp of its event (``STAMP``):
a property, an edge or a CLEAR older than the last write of it is left
alone, so CREATE, MERGE and a non-empty ENSURE all mean "each property, if
not older"; ATTACH means CLEAR then LINK; UNLINK and CLEAR are remembered.
Below, the unstamped meaning:

``(SET, key, props)``
    The node's properties become ``props``; creates the node if missing.
``(CREATE, key, props)``
    The node's creation: ``props`` go beneath the properties it already has
    (a creation logged after later events about the node, which webhooks'
    retries and parallel deliveries do, keeps what those events set);
    creates the node if missing.
``(MERGE, key, patch)``
    Merge ``patch`` into the node's properties (a ``None`` value removes the
    property); creates the node if missing.
``(ENSURE, key, props)``
    Create the node with ``props`` if it is missing; no-op otherwise.
``(DELETE, key)``
    Delete the node and its incident edges; sources of cascading containment
    edges go too (see :class:`projections.model.ontology.EdgeType`). The key is
    tombstoned: later mutations of it are ignored (platform ids are never
    reused, so they can only be stale or out-of-order deliveries).
``(LINK, src, edge_code, dst, props_or_None)``
    Add the edge (or replace its properties); missing endpoints are created
    as stubs, and a link to a tombstoned node is ignored.
``(ATTACH, src, edge_code, dst)``
    A creation's link along a single-valued edge (the project an issue is
    in): LINK unless ``src`` already has an out-edge of that type, which a
    move logged before the creation (a transfer) put there.
``(UNLINK, src, edge_code, dst)``
    Remove the edge if present.
``(CLEAR, src, edge_code)``
    Remove every out-edge of that type from ``src``.
``(REF, src, mode, source_prefix, project_id, number, path, branch)``
    An issue reference in text: resolve ``path`` (or the project id) and
    ``number`` to an issue and link ``src`` to it with CLOSES or MENTIONS.
    ``mode`` is :data:`MENTION`, :data:`CLOSE`, or :data:`CLOSE_ON_DEFAULT`
    (closes when ``branch`` is the project's default branch, else mentions).
``(LINK_IID, src, edge_code, kind, source_prefix, project_id, iid)``
    Link ``src`` to the issue (``kind`` ``b"i"``) or merge request (``b"m"``)
    numbered ``iid`` in the project, if the graph has it (a payload that
    names its target by number only).
``(STAMP, stamp)``
    The stamp (:mod:`projections.fold.stamps`) of the mutations that follow:
    a write older than the last one of the same property, edge or CLEAR is
    dropped, so the graph does not depend on the order events arrive in.
``(JOIN_GROUP, project, source_prefix, namespace)``
    A project moved to the group at full path ``namespace``: if the graph
    has that group, the project's ``group_id`` becomes its id and the project
    is linked IN_GROUP to it (a payload that names the group by path only).
"""

from __future__ import annotations

from typing import Any

from projections.model.keys import format_key
from projections.model.ontology import EDGE_TYPES

__all__ = [
    "SET",
    "MERGE",
    "ENSURE",
    "DELETE",
    "LINK",
    "UNLINK",
    "CLEAR",
    "REF",
    "CREATE",
    "ATTACH",
    "LINK_IID",
    "JOIN_GROUP",
    "STAMP",
    "MENTION",
    "CLOSE",
    "CLOSE_ON_DEFAULT",
    "Mutation",
    "describe",
]

(SET, MERGE, ENSURE, DELETE, LINK, UNLINK, CLEAR, REF, CREATE, ATTACH, LINK_IID, JOIN_GROUP,
 STAMP) = range(1, 14)
MENTION, CLOSE, CLOSE_ON_DEFAULT = range(3)

#: A mutation tuple; the first item is one of the codes above.
Mutation = tuple[Any, ...]

_NAMES = {SET: "set", MERGE: "merge", ENSURE: "ensure", DELETE: "delete", LINK: "link",
          UNLINK: "unlink", CLEAR: "clear", REF: "ref", CREATE: "create", ATTACH: "attach",
          LINK_IID: "link_iid", JOIN_GROUP: "join_group", STAMP: "stamp"}
_EDGES = {e.code: e.name for e in EDGE_TYPES}


def describe(m: Mutation) -> str:
    """One line for people: ``link issue:gitlab:1 HAS_LABEL label:gitlab:4``."""
    op = m[0]
    if op in (SET, MERGE, ENSURE, CREATE):
        return f"{_NAMES[op]} {format_key(m[1])} {m[2]!r}"
    if op == DELETE:
        return f"delete {format_key(m[1])}"
    if op in (LINK, UNLINK, ATTACH):
        extra = f" {m[4]!r}" if op == LINK and m[4] else ""
        return f"{_NAMES[op]} {format_key(m[1])} {_EDGES[m[2]]} {format_key(m[3])}{extra}"
    if op == CLEAR:
        return f"clear {format_key(m[1])} {_EDGES[m[2]]}"
    if op == LINK_IID:
        mark = "#" if m[3] == b"i" else "!"
        return f"link_iid {format_key(m[1])} {_EDGES[m[2]]} project={m[5]} {mark}{m[6]}"
    if op == JOIN_GROUP:
        return f"join_group {format_key(m[1])} {m[3]}"
    if op == STAMP:
        return f"stamp {m[1]}"
    path = f"{m[6]}#" if m[6] else "#"
    return f"ref {format_key(m[1])} mode={m[2]} project={m[4]} {path}{m[5]} branch={m[7]}"
