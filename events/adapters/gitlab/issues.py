"""GitLab Issue Hook (issues and work items, confidential or not) -> issue events.

``object_attributes.action`` is ``open``, ``close``, ``reopen`` or ``update``.
``open`` maps to ``issue.opened``; the others map every entry of ``changes``
the graph models (title, description, labels, assignees, milestone) to its
own canonical event, followed by ``issue.closed`` / ``issue.reopened`` when the
state changed. Work items (``object_kind: work_item``) of a project map like
issues; group-level ones (epics) have no project and are ignored.
"""

from __future__ import annotations

from typing import Any

from ...types import (
    IssueAssigned,
    IssueClosed,
    IssueDemilestoned,
    IssueEdited,
    IssueLabeled,
    IssueMilestoned,
    IssueOpened,
    IssueReopened,
    IssueUnassigned,
    IssueUnlabeled,
)
from ..common import Builder, Mapped, Pending, ignored
from ..payload import Node
from .shared import (
    Vocabulary,
    change,
    common_changes,
    label_catalog,
    project_id_of,
    unmodeled,
    user_actor,
)

__all__ = ["map_issue"]

_WORDS = Vocabulary(
    edited=IssueEdited,
    labeled=IssueLabeled,
    unlabeled=IssueUnlabeled,
    assigned=IssueAssigned,
    unassigned=IssueUnassigned,
    milestoned=IssueMilestoned,
    demilestoned=IssueDemilestoned,
)
# GitLab's issues.state_id: 1 opened, 2 closed.
_CLOSED, _OPENED = 2, 1


def map_issue(root: Node, b: Builder) -> Mapped:
    """Map one Issue Hook (``object_kind`` ``issue`` or ``work_item``)."""
    attrs = root.obj("object_attributes")
    kind = attrs.opt_text("type") or root.text("object_kind")
    action = attrs.text("action")
    project_id = project_id_of(root, attrs)
    if project_id is None:
        return ignored(
            f"{kind} {attrs.id('id')} belongs to a group, not a project; "
            "the graph models project issues only"
        )
    b.actor = user_actor(root)
    base = {"issue_id": attrs.id("id"), "project_id": project_id}
    labels = label_catalog(root, attrs)
    if action == "open":
        b.when((attrs, "created_at"), (attrs, "updated_at"))
        return b.finish([(IssueOpened, _opened(root, attrs, base))], labels=labels)
    if action not in ("close", "reopen", "update"):
        return ignored(f"issue action {action!r} is not known to this adapter")
    b.when((attrs, "updated_at"), (attrs, "created_at"))
    changes = root.opt_obj("changes")
    pending: Pending = common_changes(changes, base, _WORDS)
    state = _state_change(action, changes)
    if state is not None:
        pending.append((state, base))
    return b.finish(
        pending,
        labels=labels,
        if_empty=f"issue update changes nothing the graph models (changed: {unmodeled(changes)})",
    )


def _opened(root: Node, attrs: Node, base: dict[str, Any]) -> dict[str, Any]:
    assignee_ids = attrs.ids("assignee_ids")
    if not assignee_ids and attrs.has("assignee_id"):
        assignee_ids = [attrs.id("assignee_id")]
    return {
        **base,
        "iid": attrs.id("iid"),
        "title": attrs.text("title"),
        "author_id": attrs.id("author_id"),
        "description": attrs.opt_text("description") or "",
        "label_ids": attrs.object_ids("labels") or root.object_ids("labels"),
        "assignee_ids": assignee_ids,
        "milestone_id": attrs.opt_id("milestone_id"),
        "confidential": attrs.flag("confidential"),
    }


def _state_change(action: str, changes: Node | None) -> type[IssueClosed | IssueReopened] | None:
    if action == "close":
        return IssueClosed
    if action == "reopen":
        return IssueReopened
    # An "update" can change the state too (API edits with state_event).
    state = change(changes, "state_id")
    if state is None:
        return None
    if state.opt_id("current") == _CLOSED:
        return IssueClosed
    if state.opt_id("current") == _OPENED and state.opt_id("previous") == _CLOSED:
        return IssueReopened
    return None
