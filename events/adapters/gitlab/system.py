"""GitLab system hooks and group hooks keyed by ``event_name`` -> directory events.

Projects, groups, users and memberships. The same payloads arrive as
``System Hook`` (instance-wide) and as group webhooks (``Project Hook``,
``Subgroup Hook``, ``Member Hook``). System hook pushes, tag pushes and merge
requests are routed to their own mappers by :mod:`.`; ``repository_update``
is ignored because it summarises a push that also arrives as ``push``.

GitLab's payloads do not name the group a project lives in
(``project_namespace_id`` is the project's own namespace), so
``project.created`` and ``project.transferred`` carry ``group_id`` None and
the full path instead (the graph finds the project by that path, and a
transferred one joins the group at its namespace when it knows that group).
``project_update`` maps to ``project.updated`` with the current name, path
and visibility (GitLab sends it when a setting changed, the path maybe not).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...types import (
    Event,
    GroupCreated,
    GroupDeleted,
    GroupUpdated,
    MemberAdded,
    MemberRemoved,
    MemberUpdated,
    ProjectCreated,
    ProjectDeleted,
    ProjectRenamed,
    ProjectTransferred,
    ProjectUpdated,
    UserCreated,
    UserDeleted,
    UserUpdated,
)
from ..common import Builder, Mapped
from ..payload import Node

__all__ = ["IGNORED", "SYSTEM_HANDLERS"]

Fields = Callable[[Node], dict[str, Any]]


def _project(root: Node) -> dict[str, Any]:
    return {
        "project_id": root.id("project_id"),
        "name": root.text("name"),
        "path": root.opt_text("path_with_namespace") or root.text("path"),
    }


def _project_created(root: Node) -> dict[str, Any]:
    return {**_project(root), "group_id": None, "visibility": root.opt_text("project_visibility")}


def _project_updated(root: Node) -> dict[str, Any]:
    return {**_project(root), "visibility": root.opt_text("project_visibility")}


def _project_transferred(root: Node) -> dict[str, Any]:
    return {
        "project_id": root.id("project_id"),
        "group_id": None,
        "path": root.text("path_with_namespace"),
    }


def _group(root: Node) -> dict[str, Any]:
    return {
        "group_id": root.id("group_id"),
        "name": root.text("name"),
        "path": root.opt_text("full_path") or root.text("path"),
    }


def _group_created(root: Node) -> dict[str, Any]:
    return {**_group(root), "parent_id": root.opt_id("parent_group_id")}


def _user(root: Node) -> dict[str, Any]:
    return {
        "user_id": root.id("user_id"),
        "username": root.text("username"),
        "name": root.opt_text("name"),
    }


def _project_member(root: Node) -> dict[str, Any]:
    return {
        "user_id": root.id("user_id"),
        "project_id": root.id("project_id"),
        "role": root.opt_text("access_level"),
    }


def _group_member(root: Node) -> dict[str, Any]:
    return {
        "user_id": root.id("user_id"),
        "group_id": root.id("group_id"),
        "role": root.opt_text("group_access"),
    }


def _without_role(fields: Fields) -> Fields:
    return lambda root: {k: v for k, v in fields(root).items() if k != "role"}


def _only(*keys: str) -> Fields:
    return lambda root: {key: root.id(key) for key in keys}


# event_name -> (canonical class, its fields, timestamp order). "created" events
# are dated by created_at; the rest by updated_at, except deletions, whose
# payload has no deletion time: those prefer the delivery time (received_at).
_TABLE: dict[str, tuple[type[Event], Fields, str]] = {
    "project_create": (ProjectCreated, _project_created, "created"),
    "project_destroy": (ProjectDeleted, _only("project_id"), "deleted"),
    "project_rename": (ProjectRenamed, _project, "updated"),
    "project_update": (ProjectUpdated, _project_updated, "updated"),
    "project_transfer": (ProjectTransferred, _project_transferred, "updated"),
    "group_create": (GroupCreated, _group_created, "created"),
    "subgroup_create": (GroupCreated, _group_created, "created"),
    "group_destroy": (GroupDeleted, _only("group_id"), "deleted"),
    "subgroup_destroy": (GroupDeleted, _only("group_id"), "deleted"),
    "group_rename": (GroupUpdated, _group, "updated"),
    "user_create": (UserCreated, _user, "created"),
    "user_destroy": (UserDeleted, _only("user_id"), "deleted"),
    "user_rename": (UserUpdated, _user, "updated"),
    "user_add_to_team": (MemberAdded, _project_member, "created"),
    "user_update_for_team": (MemberUpdated, _project_member, "updated"),
    "user_remove_from_team": (MemberRemoved, _without_role(_project_member), "deleted"),
    "user_add_to_group": (MemberAdded, _group_member, "created"),
    "user_update_for_group": (MemberUpdated, _group_member, "updated"),
    "user_remove_from_group": (MemberRemoved, _without_role(_group_member), "deleted"),
}

#: System hook events that deliberately map to nothing, with the reason.
IGNORED: dict[str, str] = {
    "repository_update": "repository_update summarises a push that also arrives as a push hook",
    "user_failed_login": "failed logins do not change the graph",
    "key_create": "SSH keys do not change the graph",
    "key_destroy": "SSH keys do not change the graph",
    **{
        name: "access requests are not memberships; the graph changes when one is granted"
        for name in (
            "user_access_request_to_group",
            "user_access_request_to_project",
            "user_access_request_revoked_for_group",
            "user_access_request_revoked_for_project",
            "user_access_request_denied_for_group",
            "user_access_request_denied_for_project",
        )
    },
    "gitlab_subscription_member_approval": "subscription seat approvals do not change the graph",
    "gitlab_subscription_member_approvals": "subscription seat approvals do not change the graph",
    "expiring_access_token": "access token expiry does not change the graph",
}


def _mapper(cls: type[Event], fields: Fields, dated: str) -> Callable[[Node, Builder], Mapped]:
    def map_system(root: Node, b: Builder) -> Mapped:
        values = fields(root)
        if dated == "created":
            b.when((root, "created_at"), (root, "updated_at"))
        elif dated == "updated":
            b.when((root, "updated_at"), (root, "created_at"))
        else:
            b.when(fallback=[(root, "updated_at"), (root, "created_at")])
        return b.finish([(cls, values)])

    return map_system


#: event_name -> mapper, for every system or group hook that changes the graph.
SYSTEM_HANDLERS: dict[str, Callable[[Node, Builder], Mapped]] = {
    name: _mapper(*entry) for name, entry in _TABLE.items()
}
