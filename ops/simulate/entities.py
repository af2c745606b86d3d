"""Entities of the simulated world, as plain mutable objects with slots.

They hold what the generator must remember to keep later events coherent:
who is a member, which labels and milestones exist, which issues are open,
which branches exist and which merge request each one carries.
"""

from __future__ import annotations

from collections import deque

from events.types import Actor

__all__ = ["Group", "Issue", "MergeRequest", "Project", "User"]

_COMMENTS_KEPT = 64


class User:
    """A platform account; ``joined`` once it has been a member anywhere."""

    __slots__ = ("id", "username", "name", "email", "heat", "actor", "alive", "joined")

    def __init__(self, uid: int, username: str, name: str, heat: float) -> None:
        self.id = uid
        self.username = username
        self.name = name
        self.email = f"{username}@example.com"
        self.heat = heat
        self.actor = Actor(id=uid, username=username, name=name)
        self.alive = True
        self.joined = False


class Group:
    """A namespace holding projects; ``path`` is the first part of a full path."""

    __slots__ = ("id", "name", "path", "alive", "projects")

    def __init__(self, gid: int, name: str, path: str) -> None:
        self.id = gid
        self.name = name
        self.path = path
        self.alive = True
        self.projects: set[int] = set()


class Project:
    """A repository with its members, labels, milestones, issues, MRs and branches."""

    __slots__ = (
        "id", "name", "path", "group", "heat", "alive", "active", "owner", "members", "roles",
        "labels", "label_names", "milestones", "closed_milestones", "next_milestone",
        "issues", "next_iid", "mrs", "next_mr_iid", "default_branch", "heads",
        "features", "stale_features", "branch_issue", "branch_mr", "tags", "next_tag",
        "comments",
    )

    def __init__(self, pid: int, name: str, path: str, group: Group, heat: float,
                 owner: User) -> None:
        self.id = pid
        self.name = name
        self.path = path
        self.group = group
        self.heat = heat
        self.alive = True
        self.active = True  # alive and not archived
        self.owner = owner
        self.members: list[User] = []  # hottest first
        self.roles: dict[int, str] = {}
        self.labels: list[int] = []
        self.label_names: dict[int, str] = {}
        self.milestones: list[int] = []
        self.closed_milestones: list[int] = []
        self.next_milestone = 1
        self.issues: list[Issue] = []
        self.next_iid = 1
        self.mrs: list[MergeRequest] = []
        self.next_mr_iid = 1
        self.default_branch = "main"
        self.heads: dict[str, str] = {}
        self.features: list[str] = []  # feature branches, oldest first; may hold deleted ones
        self.stale_features = 0
        self.branch_issue: dict[str, Issue] = {}
        self.branch_mr: dict[str, MergeRequest] = {}
        self.tags: list[str] = []
        self.next_tag = 0
        self.comments: deque[tuple[int, User, object]] = deque(maxlen=_COMMENTS_KEPT)

    @property
    def full_path(self) -> str:
        """``group-path/project-path`` as it is right now."""
        return f"{self.group.path}/{self.path}"


class Issue:
    """An issue; ``project`` and ``iid`` change when it is transferred."""

    __slots__ = ("id", "iid", "project", "title", "open", "labels", "assignees",
                 "milestone", "links", "alive")

    def __init__(self, issue_id: int, iid: int, project: Project, title: str) -> None:
        self.id = issue_id
        self.iid = iid
        self.project = project
        self.title = title
        self.open = True
        self.labels: list[int] = []
        self.assignees: list[User] = []
        self.milestone: int | None = None
        self.links: list[tuple[Issue, str]] = []
        self.alive = True


class MergeRequest:
    """A merge request from a feature branch into the default branch."""

    __slots__ = ("id", "iid", "project", "title", "state", "branch", "target", "labels",
                 "assignees", "reviewers", "milestone", "closes", "alive")

    def __init__(self, mid: int, iid: int, project: Project, title: str, branch: str) -> None:
        self.id = mid
        self.iid = iid
        self.project = project
        self.title = title
        self.state = "opened"
        self.branch = branch
        self.target = project.default_branch
        self.labels: list[int] = []
        self.assignees: list[User] = []
        self.reviewers: list[User] = []
        self.milestone: int | None = None
        self.closes: list[Issue] = []
        self.alive = True
