"""GitHub ``repository``, ``fork`` and ``member`` webhooks -> project and member events.

A repository is a project: ``project_id`` is the repository id, ``path`` its
``full_name`` and ``group_id`` the owner's id when the owner is an
organization (a user's repositories have no group).

``repository`` actions: created, deleted, archived, unarchived, renamed and
transferred map to the project event of the same meaning; edited with
``changes.default_branch``, privatized and publicized map to
``project.updated`` (the new default branch, the new visibility), edited
otherwise (description, homepage, topics) is ignored. The ``public`` webhook
(a repository made public) maps to ``project.updated`` too. ``fork`` maps to
``project.forked``; ``member`` added, edited, removed to ``member.*`` of the
repository's project.
"""

from __future__ import annotations

from ...types import (
    MemberAdded,
    MemberRemoved,
    MemberUpdated,
    ProjectArchived,
    ProjectCreated,
    ProjectDeleted,
    ProjectForked,
    ProjectRenamed,
    ProjectTransferred,
    ProjectUnarchived,
    ProjectUpdated,
)
from ..common import Builder, Mapped, ignored
from ..payload import Node
from .base import action_of, org_id, unknown_action

__all__ = ["map_fork", "map_member", "map_public", "map_repository"]

_VISIBILITY = {"privatized": "private", "publicized": "public"}
_PLAIN = {
    "deleted": ProjectDeleted,
    "archived": ProjectArchived,
    "unarchived": ProjectUnarchived,
}


def map_repository(root: Node, b: Builder) -> Mapped:
    """Map one ``repository`` webhook."""
    action = action_of(root)
    repo = root.obj("repository")
    base = {"project_id": repo.id("id")}
    if action == "created":
        b.when((repo, "created_at"), (repo, "updated_at"))
        visibility = repo.opt_text("visibility") or (
            "private" if repo.flag("private") else "public"
        )
        created = {
            **base,
            "name": repo.text("name"),
            "path": repo.text("full_name"),
            "group_id": org_id(repo),
            "default_branch": repo.opt_text("default_branch"),
            "visibility": visibility,
        }
        return b.finish([(ProjectCreated, created)])
    # The repository's own timestamps do not date these changes.
    b.when(fallback=[(repo, "updated_at"), (repo, "pushed_at")])
    if action in _PLAIN:
        return b.finish([(_PLAIN[action], base)])
    if action in _VISIBILITY:
        visibility = repo.opt_text("visibility") or _VISIBILITY[action]
        return b.finish([(ProjectUpdated, {**base, "visibility": visibility})])
    if action == "edited":
        changes = root.opt_obj("changes")
        if changes is None or not changes.has("default_branch"):
            keys = ", ".join(sorted(changes.data)) if changes is not None else "nothing"
            return ignored(f"repository 'edited' changed {keys}: nothing the graph models")
        branch = {**base, "default_branch": repo.text("default_branch")}
        return b.finish([(ProjectUpdated, branch)])
    if action == "renamed":
        renamed = {**base, "name": repo.text("name"), "path": repo.text("full_name")}
        return b.finish([(ProjectRenamed, renamed)])
    if action == "transferred":
        moved = {**base, "group_id": org_id(repo), "path": repo.text("full_name")}
        return b.finish([(ProjectTransferred, moved)])
    return unknown_action("repository", action)


def map_public(root: Node, b: Builder) -> Mapped:
    """Map one ``public`` webhook: a private repository was made public."""
    repo = root.obj("repository")
    b.when(fallback=[(repo, "updated_at"), (repo, "pushed_at")])
    return b.finish([(ProjectUpdated, {"project_id": repo.id("id"), "visibility": "public"})])


def map_fork(root: Node, b: Builder) -> Mapped:
    """Map one ``fork`` webhook: the fork (``forkee``) is a new project."""
    forkee = root.obj("forkee")
    source = root.obj("repository")
    b.when((forkee, "created_at"), fallback=[(forkee, "updated_at")])
    forked = {
        "project_id": forkee.id("id"),
        "forked_from_id": source.id("id"),
        "name": forkee.text("name"),
        "path": forkee.text("full_name"),
        "group_id": org_id(forkee),
    }
    return b.finish([(ProjectForked, forked)])


def map_member(root: Node, b: Builder) -> Mapped:
    """Map one ``member`` webhook (a repository collaborator)."""
    action = action_of(root)
    member = root.obj("member")
    repo = root.obj("repository")
    base = {"user_id": member.id("id"), "project_id": repo.id("id")}
    b.when(fallback=[(repo, "updated_at"), (repo, "pushed_at")])
    changes = root.opt_obj("changes")
    permission = changes.opt_obj("permission") if changes is not None else None
    role = permission.opt_text("to") if permission is not None else None
    if action == "added":
        return b.finish([(MemberAdded, {**base, "role": role})])
    if action == "edited":
        return b.finish([(MemberUpdated, {**base, "role": role})])
    if action == "removed":
        return b.finish([(MemberRemoved, base)])
    return unknown_action("member", action)
