"""GitHub webhooks -> canonical events (pure, no I/O).

The ``X-GitHub-Event`` header names the webhook; its ``action`` the change.
Source is ``github``; ids are GitHub's numeric ids (a pull request's
``number`` kept in ``iid``), repositories are projects and pull requests are
merge requests. Each module documents which actions map to what:

==============================  =============================================
webhook                         module
==============================  =============================================
issues, issue_comment           :mod:`.issues`
pull_request                    :mod:`.pulls`
push, create, delete            :mod:`.refs`
repository, public, fork,      :mod:`.repositories`
member                          :mod:`.repositories`
label, milestone                :mod:`.planning`
==============================  =============================================

Every other webhook (star, watch, ping, workflow_run ...) is ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ...errors import InvalidEvent
from ..common import Builder, Mapped, ignored
from ..payload import Node, type_name
from .base import context_facts, sender_actor
from .issues import map_issue_comment, map_issues
from .planning import map_label, map_milestone
from .pulls import map_pull_request
from .refs import map_create, map_delete, map_push
from .repositories import map_fork, map_member, map_public, map_repository

__all__ = ["EVENTS", "map_github"]

_HANDLERS: dict[str, Callable[[Node, Builder], Mapped]] = {
    "issues": map_issues,
    "issue_comment": map_issue_comment,
    "pull_request": map_pull_request,
    "push": map_push,
    "create": map_create,
    "delete": map_delete,
    "repository": map_repository,
    "public": map_public,
    "fork": map_fork,
    "member": map_member,
    "label": map_label,
    "milestone": map_milestone,
}

#: X-GitHub-Event values this adapter maps.
EVENTS = frozenset(_HANDLERS)


def map_github(
    event_name: str,
    payload: Mapping[str, Any],
    *,
    delivery_id: str | None = None,
    received_at: datetime | None = None,
) -> Mapped:
    """Map one GitHub webhook to canonical events, or say why it maps to none.

    ``event_name`` is the ``X-GitHub-Event`` header; ``delivery_id`` the
    ``X-GitHub-Delivery`` header, which makes event ids stable across
    redeliveries (see :mod:`events.adapters.common`); ``received_at`` the
    recorded delivery time, used to date events whose payload has no timestamp
    of their own (labels, deletions). Raises
    :class:`~events.errors.InvalidEvent` (reason ``schema``) when the payload
    is malformed.
    """
    handler = _HANDLERS.get(event_name)
    if handler is None:
        return ignored(f"github {event_name!r} events are not used by the graph")
    if not isinstance(payload, Mapping):
        raise InvalidEvent("schema", f"Expected `object`, got `{type_name(payload)}` - at `$`")
    root = Node(payload)
    builder = Builder("github", payload, delivery_id=delivery_id, received_at=received_at)
    builder.actor = sender_actor(root)
    facts = context_facts(event_name, root)
    builder.context, builder.context_skipped = facts.context(), facts.skipped
    return handler(root, builder)
