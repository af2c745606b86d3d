"""GitLab webhooks and system hooks -> canonical events (pure, no I/O).

The payload's ``object_kind`` (or, for system and group hooks, its
``event_name``) decides the mapping; the ``X-Gitlab-Event`` header only filters
out hooks the graph does not use. Source is ``gitlab``; ids are GitLab's
numeric ids, ``iid`` kept in the ``iid`` field.

=====================================  ======================================
hook                                   canonical events
=====================================  ======================================
Issue Hook (issue, work_item)          issue.* (+ label.created per label)
Note Hook                              comment.created / comment.edited
Merge Request Hook                     merge_request.* (+ label.created)
Push Hook, Tag Push Hook               ref.created / ref.deleted, commits.pushed
System / Project / Subgroup / Member   project.*, group.*, user.*, member.*
Milestone Hook                         milestone.*
=====================================  ======================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ...errors import InvalidEvent
from ..common import Builder, Mapped, ignored
from ..payload import Node, type_name
from .issues import map_issue
from .merge_requests import map_merge_request
from .milestones import map_milestone
from .notes import map_note
from .pushes import map_push
from .shared import context_facts
from .system import IGNORED, SYSTEM_HANDLERS

__all__ = ["HEADERS", "map_gitlab"]

#: X-Gitlab-Event values whose hooks can change the graph.
HEADERS = frozenset(
    {
        "Issue Hook",
        "Confidential Issue Hook",
        "Note Hook",
        "Confidential Note Hook",
        "Merge Request Hook",
        "Push Hook",
        "Tag Push Hook",
        "System Hook",
        "Project Hook",
        "Subgroup Hook",
        "Member Hook",
        "Milestone Hook",
    }
)

_HANDLERS: dict[str, Callable[[Node, Builder], Mapped]] = {
    "issue": map_issue,
    "work_item": map_issue,
    "note": map_note,
    "merge_request": map_merge_request,
    "push": map_push,
    "tag_push": map_push,
    "milestone": map_milestone,
    **SYSTEM_HANDLERS,
}


def map_gitlab(
    event_name: str | None,
    payload: Mapping[str, Any],
    *,
    delivery_id: str | None = None,
    received_at: datetime | None = None,
) -> Mapped:
    """Map one GitLab hook to canonical events, or say why it maps to none.

    ``event_name`` is the ``X-Gitlab-Event`` header (None: infer from the
    payload); ``delivery_id`` the ``Idempotency-Key`` header, which makes event
    ids stable across redeliveries (see :mod:`events.adapters.common`);
    ``received_at`` the recorded delivery time, used to date events whose
    payload has no timestamp (pushes without commits). Raises
    :class:`~events.errors.InvalidEvent` (reason ``schema``) when the payload
    is malformed.
    """
    if event_name is not None and event_name not in HEADERS:
        return ignored(f"gitlab {event_name!r} events are not used by the graph")
    if not isinstance(payload, Mapping):
        raise InvalidEvent("schema", f"Expected `object`, got `{type_name(payload)}` - at `$`")
    root = Node(payload)
    kind = root.opt_text("object_kind") or root.opt_text("event_name")
    if kind is None:
        raise InvalidEvent(
            "schema",
            "Object missing required field `object_kind` (or `event_name` for system hooks) "
            "- at `$`; is this a GitLab webhook body?",
        )
    handler = _HANDLERS.get(kind)
    if handler is None:
        return ignored(IGNORED.get(kind) or f"gitlab {kind!r} events are not used by the graph")
    builder = Builder("gitlab", payload, delivery_id=delivery_id, received_at=received_at)
    facts = context_facts(root)
    builder.context, builder.context_skipped = facts.context(), facts.skipped
    return handler(root, builder)
