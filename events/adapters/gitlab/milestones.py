"""GitLab Milestone Hook (GitLab 18.2+) -> milestone events.

``action`` is ``create``, ``close``, ``reopen`` or ``delete``; group
milestones carry ``project_id`` null, which ``milestone.created`` allows.
"""

from __future__ import annotations

from ...types import MilestoneCreated, MilestoneDeleted, MilestoneUpdated
from ..common import Builder, Mapped, ignored
from ..payload import Node
from .shared import user_actor

__all__ = ["map_milestone"]


def map_milestone(root: Node, b: Builder) -> Mapped:
    """Map one Milestone Hook."""
    attrs = root.obj("object_attributes")
    action = root.opt_text("action") or attrs.text("action")
    base = {"milestone_id": attrs.id("id")}
    b.actor = user_actor(root)
    if action == "create":
        b.when((attrs, "created_at"), (attrs, "updated_at"))
        created = {
            **base,
            "project_id": attrs.opt_id("project_id"),
            "title": attrs.text("title"),
            "state": "closed" if attrs.opt_text("state") == "closed" else "active",
            "due_date": attrs.opt_text("due_date"),
        }
        return b.finish([(MilestoneCreated, created)])
    if action in ("close", "reopen"):
        b.when((attrs, "updated_at"), (attrs, "created_at"))
        state = "closed" if action == "close" else "active"
        return b.finish([(MilestoneUpdated, {**base, "state": state})])
    if action == "delete":
        b.when(fallback=[(attrs, "updated_at")])
        return b.finish([(MilestoneDeleted, base)])
    return ignored(f"milestone action {action!r} is not known to this adapter")
