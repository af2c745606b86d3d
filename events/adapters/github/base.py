"""Pieces the GitHub mappers share: actors, repositories as projects, labels."""

from __future__ import annotations

from typing import Any

from ...types import Actor
from ..common import Mapped, ignored
from ..payload import Node

__all__ = [
    "action_of",
    "label_fields",
    "not_in_graph",
    "org_id",
    "sender_actor",
    "unknown_action",
    "user_ids",
]


def sender_actor(root: Node) -> Actor | None:
    """The actor of a webhook: its ``sender``."""
    sender = root.opt_obj("sender")
    if sender is None:
        return None
    return Actor(
        id=sender.id("id"), username=sender.opt_text("login"), name=sender.opt_text("name")
    )


def action_of(root: Node) -> str:
    """The webhook's ``action``."""
    return root.text("action")


def org_id(repo: Node) -> int | None:
    """The owner's id when the repository belongs to an organization (a group)."""
    owner = repo.opt_obj("owner")
    if owner is None or owner.opt_text("type") != "Organization":
        return None
    return owner.id("id")


def label_fields(label: Node, project_id: int) -> dict[str, Any]:
    """``label.created`` fields of a GitHub label (colour as ``#rrggbb``, like GitLab's)."""
    color = label.opt_text("color")
    return {
        "label_id": label.id("id"),
        "name": label.text("name"),
        "project_id": project_id,
        "color": f"#{color}" if color and not color.startswith("#") else color,
    }


def user_ids(node: Node, key: str) -> list[int]:
    """Ids of the users in an array that may also hold teams (requested reviewers)."""
    return [item.id("id") for item in node.objs(key) if not item.has("slug")]


def not_in_graph(event: str, action: str) -> Mapped:
    """The reason for an action that changes nothing the graph models."""
    return ignored(f"{event} action {action!r} does not change the graph")


def unknown_action(event: str, action: str) -> Mapped:
    """The reason for an action this adapter does not know (newer than its schemas)."""
    return ignored(f"{event} action {action!r} is not known to this adapter")
