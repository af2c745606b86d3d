"""Pieces the GitHub mappers share: actors, repositories as projects, labels."""

from __future__ import annotations

from typing import Any

from ...errors import InvalidEvent
from ...types import (
    Actor,
    GroupFacts,
    IssueFacts,
    MilestoneFacts,
    ProjectFacts,
    UserFacts,
)
from ..common import Mapped, ignored
from ..facts import Facts
from ..payload import Node

__all__ = [
    "action_of",
    "context_facts",
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


# --- context facts ------------------------------------------------------------

_ISSUE_STATES = {"open": "opened", "closed": "closed"}
_MILESTONE_STATES = {"open": "active", "closed": "closed"}


def _visibility(repo: Node) -> str | None:
    found = repo.opt_text("visibility")
    if found is None and repo.has("private"):
        found = "private" if repo.flag("private") else "public"
    return found


def _repo(facts: Facts, repo: Node) -> None:
    owner = repo.opt_obj("owner")
    if owner is not None and owner.opt_text("type") == "Organization":
        facts.add(GroupFacts, lambda: {"id": owner.id("id"), "name": owner.opt_text("login"),
                                       "path": owner.opt_text("login")})
    facts.add(ProjectFacts, lambda: {
        "id": repo.id("id"), "name": repo.opt_text("name"), "path": repo.opt_text("full_name"),
        "group_id": org_id(repo), "default_branch": repo.opt_text("default_branch"),
        "visibility": _visibility(repo)})


def _user(facts: Facts, user: Node | None) -> None:
    if user is not None and not user.has("slug"):  # teams have a slug, users a login
        facts.add(UserFacts, lambda: {"id": user.id("id"), "username": user.opt_text("login"),
                                      "name": user.opt_text("name")})


def _issuable(facts: Facts, item: Node, project_id: int | None) -> None:
    _user(facts, item.opt_obj("user"))
    for key in ("assignees", "requested_reviewers"):
        for user in item.objs(key):
            _user(facts, user)
    _user(facts, item.opt_obj("assignee"))
    milestone = item.opt_obj("milestone")
    if milestone is not None:
        facts.add(MilestoneFacts, lambda: {
            "id": milestone.id("id"), "title": milestone.opt_text("title"),
            "state": _MILESTONE_STATES.get(milestone.opt_text("state") or ""),
            "due_date": milestone.opt_text("due_on"), "project_id": project_id})


def context_facts(event_name: str, root: Node) -> Facts:
    """What a GitHub webhook says besides its subject: its repository (and organization),
    the people it names, milestones, and the issue a comment is on."""
    facts = Facts()

    def read() -> None:
        repo = root.opt_obj("repository")
        project_id = repo.opt_id("id") if repo is not None else None
        if repo is not None:
            _repo(facts, repo)
        org = root.opt_obj("organization")
        if org is not None:
            facts.add(GroupFacts, lambda: {"id": org.id("id"), "name": org.opt_text("login"),
                                           "path": org.opt_text("login")})
        for key in ("assignee", "requested_reviewer", "member"):
            _user(facts, root.opt_obj(key))
        comment = root.opt_obj("comment")
        if comment is not None:
            _user(facts, comment.opt_obj("user"))
        pull = root.opt_obj("pull_request")
        if pull is not None:
            _issuable(facts, pull, project_id)
            for side in ("base", "head"):
                ref = pull.opt_obj(side)
                other = ref.opt_obj("repo") if ref is not None else None
                if other is not None:
                    _repo(facts, other)
        issue = root.opt_obj("issue")
        if issue is not None:
            _issuable(facts, issue, project_id)
            if event_name == "issue_comment" and not issue.has("pull_request") and project_id is not None:
                facts.add(IssueFacts, lambda: {
                    "id": issue.id("id"), "project_id": project_id, "iid": issue.opt_id("number"),
                    "title": issue.opt_text("title"),
                    "state": _ISSUE_STATES.get(issue.opt_text("state") or "")})

    try:
        read()
    except InvalidEvent:  # an object where an array belongs, or the like: what was read stays
        facts.skipped += 1
    return facts
