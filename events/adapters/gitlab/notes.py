"""GitLab Note Hook (comments, confidential or not) -> comment events.

A note on an issue, merge request, commit or snippet maps to
``comment.created`` (``object_attributes.action`` ``create``, or no action:
GitLab before 16.11 only sent creations) or ``comment.edited`` (``update``).
GitLab sends no hook when a note is deleted. Notes on other targets (designs,
wiki pages) are ignored.
"""

from __future__ import annotations

from typing import Any

from ...errors import InvalidEvent
from ...types import CommentCreated, CommentEdited
from ..common import Builder, Mapped, ignored
from ..payload import Node
from .shared import project_id_of, user_actor

__all__ = ["map_note"]

# noteable_type -> (canonical target type, key of the target object in the hook)
_TARGETS = {
    "Issue": ("issue", "issue"),
    "MergeRequest": ("merge_request", "merge_request"),
    "Commit": ("commit", "commit"),
    "Snippet": ("snippet", "snippet"),
}


def map_note(root: Node, b: Builder) -> Mapped:
    """Map one Note Hook."""
    attrs = root.obj("object_attributes")
    action = attrs.opt_text("action") or "create"
    noteable_type = attrs.text("noteable_type")
    if noteable_type not in _TARGETS:
        return ignored(f"comments on a {noteable_type} are not modelled by the graph")
    if action not in ("create", "update"):
        return ignored(f"note action {action!r} is not known to this adapter")
    project_id = project_id_of(root, attrs)
    if project_id is None:
        project_id = root.id("project_id")  # raises: no project anywhere
    b.actor = user_actor(root)
    base = {"comment_id": attrs.id("id"), "project_id": project_id}
    if action == "update":
        b.when((attrs, "updated_at"), (attrs, "created_at"))
        edited = {**base, "body": attrs.opt_text("note") or ""}
        return b.finish([(CommentEdited, edited)])
    b.when((attrs, "created_at"), (attrs, "updated_at"))
    created = {
        **base,
        **_target(root, attrs, noteable_type),
        "author_id": attrs.id("author_id"),
        "body": attrs.opt_text("note") or "",
    }
    return b.finish([(CommentCreated, created)])


def _target(root: Node, attrs: Node, noteable_type: str) -> dict[str, Any]:
    target_type, key = _TARGETS[noteable_type]
    target = root.opt_obj(key)
    if target_type == "commit":
        sha = attrs.opt_text("commit_id") or (target.text("id") if target else None)
        if not sha:
            raise InvalidEvent(
                "schema", f"a note on a commit must name the commit - at `{attrs.at('commit_id')}`"
            )
        return {"target_type": target_type, "target_sha": sha}
    target_id = attrs.opt_id("noteable_id")
    if target_id is None:
        target_id = target.id("id") if target is not None else attrs.id("noteable_id")
    return {"target_type": target_type, "target_id": target_id}
