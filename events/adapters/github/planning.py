"""GitHub ``label`` and ``milestone`` webhooks -> label and milestone events.

``label`` created, edited, deleted map to ``label.*`` (colour as ``#rrggbb``).
``milestone`` created and deleted map to ``milestone.created`` / ``.deleted``;
opened, closed and edited to ``milestone.updated`` (state ``active`` or
``closed``; for edited the changed title and due date, an edit of the
description alone is ignored). Due dates are kept as ``YYYY-MM-DD``, as GitLab
sends them.
"""

from __future__ import annotations

from typing import Any

from ...types import (
    LabelCreated,
    LabelDeleted,
    LabelUpdated,
    MilestoneCreated,
    MilestoneDeleted,
    MilestoneUpdated,
)
from ..common import Builder, Mapped
from ..payload import Node
from .base import action_of, label_fields, unknown_action

__all__ = ["map_label", "map_milestone"]


def map_label(root: Node, b: Builder) -> Mapped:
    """Map one ``label`` webhook."""
    action = action_of(root)
    label = root.obj("label")
    repo = root.obj("repository")
    # Labels carry no timestamps.
    b.when(fallback=[(repo, "updated_at"), (repo, "pushed_at")])
    fields = label_fields(label, repo.id("id"))
    if action == "created":
        return b.finish([(LabelCreated, fields)])
    if action == "edited":
        updated = {key: fields[key] for key in ("label_id", "name", "color")}
        return b.finish([(LabelUpdated, updated)])
    if action == "deleted":
        return b.finish([(LabelDeleted, {"label_id": fields["label_id"]})])
    return unknown_action("label", action)


def _due_date(milestone: Node) -> str | None:
    due = milestone.time("due_on")
    return due.date().isoformat() if due is not None else None


def map_milestone(root: Node, b: Builder) -> Mapped:
    """Map one ``milestone`` webhook."""
    action = action_of(root)
    milestone = root.obj("milestone")
    base: dict[str, Any] = {"milestone_id": milestone.id("id")}
    if action == "created":
        b.when((milestone, "created_at"), (milestone, "updated_at"))
        created = {
            **base,
            "project_id": root.obj("repository").id("id"),
            "title": milestone.text("title"),
            "state": "closed" if milestone.opt_text("state") == "closed" else "active",
            "due_date": _due_date(milestone),
        }
        return b.finish([(MilestoneCreated, created)])
    if action == "deleted":
        b.when(fallback=[(milestone, "updated_at")])
        return b.finish([(MilestoneDeleted, base)])
    if action == "closed":
        b.when((milestone, "closed_at"), (milestone, "updated_at"))
        return b.finish([(MilestoneUpdated, {**base, "state": "closed"})])
    b.when((milestone, "updated_at"), (milestone, "created_at"))
    if action == "opened":
        return b.finish([(MilestoneUpdated, {**base, "state": "active"})])
    if action == "edited":
        changes = root.opt_obj("changes")
        update: dict[str, Any] = {}
        if changes is not None and changes.has("title"):
            update["title"] = milestone.text("title")
        if changes is not None and changes.has("due_on"):
            update["due_date"] = _due_date(milestone)
        pending = [(MilestoneUpdated, {**base, **update})] if update else []
        return b.finish(pending, if_empty="milestone 'edited' changed neither title nor due date")
    return unknown_action("milestone", action)
