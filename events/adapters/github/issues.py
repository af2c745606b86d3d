"""GitHub ``issues`` and ``issue_comment`` webhooks -> issue and comment events.

``issues`` actions: opened, edited, closed, reopened, deleted, transferred,
assigned, unassigned, labeled, unlabeled, milestoned, demilestoned map to the
issue event of the same meaning (transferred: GitHub makes a new issue in the
new repository, ``changes.new_issue``, so ``issue.opened`` of that one, then
``issue.transferred`` of the old one naming it); locked, unlocked, pinned and unpinned change
nothing the graph models. An ``issues`` webhook about a pull request (GitHub
sends some, e.g. milestoned) is ignored: pull requests map from
``pull_request`` webhooks, and the issue id GitHub gives a pull request is not
the pull request's id.

``issue_comment`` actions created, edited, deleted map to comment events. A
comment on a pull request (``issue.pull_request`` set) has target type
``merge_request`` and ``target_iid`` the pull request's number: the payload
has no pull request id, only its issue id, and the graph finds it by number.
"""

from __future__ import annotations

from typing import Any

from ...types import (
    CommentCreated,
    CommentDeleted,
    CommentEdited,
    IssueAssigned,
    IssueClosed,
    IssueDeleted,
    IssueDemilestoned,
    IssueEdited,
    IssueLabeled,
    IssueMilestoned,
    IssueOpened,
    IssueReopened,
    IssueTransferred,
    IssueUnassigned,
    IssueUnlabeled,
)
from ..common import Builder, Mapped, Pending, ignored
from ..payload import Node
from .base import action_of, label_fields, not_in_graph, unknown_action

__all__ = ["map_issue_comment", "map_issues"]

_QUIET = frozenset({"locked", "unlocked", "pinned", "unpinned"})


def map_issues(root: Node, b: Builder) -> Mapped:
    """Map one ``issues`` webhook."""
    action = action_of(root)
    issue = root.obj("issue")
    project_id = root.obj("repository").id("id")
    if issue.has("pull_request"):
        return ignored(
            f"issues {action!r} is about pull request #{issue.id('number')}; pull requests "
            "map from pull_request webhooks"
        )
    if action in _QUIET:
        return not_in_graph("issues", action)
    base = {"issue_id": issue.id("id"), "project_id": project_id}
    if action == "opened":
        b.when((issue, "created_at"), (issue, "updated_at"))
        opened, labels = _opened(issue, project_id)
        return b.finish([(IssueOpened, opened)], labels=labels)
    if action == "closed":
        b.when((issue, "closed_at"), (issue, "updated_at"))
        return b.finish([(IssueClosed, base)])
    if action == "deleted":
        # No deletion time in the payload: prefer the delivery time.
        b.when(fallback=[(issue, "updated_at")])
        return b.finish([(IssueDeleted, base)])
    if action in _DETAILED:
        b.when((issue, "updated_at"))
        return _DETAILED[action](root, issue, base, b)
    return unknown_action("issues", action)


def _opened(issue: Node, project_id: int) -> tuple[dict[str, Any], dict[int, dict[str, Any]]]:
    """``issue.opened`` fields of an issue object, and ``label.created`` fields of its labels."""
    labels = {label.id("id"): label_fields(label, project_id) for label in issue.objs("labels")}
    milestone = issue.opt_obj("milestone")
    opened = {
        "issue_id": issue.id("id"),
        "project_id": project_id,
        "iid": issue.id("number"),
        "title": issue.text("title"),
        "author_id": issue.obj("user").id("id"),
        "description": issue.opt_text("body") or "",
        "label_ids": list(labels),
        "assignee_ids": issue.object_ids("assignees"),
        "milestone_id": milestone.id("id") if milestone is not None else None,
    }
    return opened, labels


def _edited(root: Node, issue: Node, base: dict[str, Any], b: Builder) -> Mapped:
    changes = root.opt_obj("changes")
    edit: dict[str, Any] = {}
    if changes is not None and changes.has("title"):
        edit["title"] = issue.text("title")
    if changes is not None and changes.has("body"):
        edit["description"] = issue.opt_text("body") or ""
    pending = [(IssueEdited, {**base, **edit})] if edit else []
    return b.finish(pending, if_empty="issues 'edited' changed neither title nor body")


def _reopened(root: Node, issue: Node, base: dict[str, Any], b: Builder) -> Mapped:
    return b.finish([(IssueReopened, base)])


def _transferred(root: Node, issue: Node, base: dict[str, Any], b: Builder) -> Mapped:
    changes = root.opt_obj("changes")
    new_repo = changes.opt_obj("new_repository") if changes is not None else None
    if new_repo is None:
        return ignored("issues 'transferred' names no `changes.new_repository`; nothing to apply")
    new_issue = changes.opt_obj("new_issue") if changes is not None else None
    to_project = new_repo.id("id")
    moved = {**base, "to_project_id": to_project, "iid": None}
    if new_issue is None:
        return b.finish([(IssueTransferred, moved)])
    # GitHub made a new issue in the new repository; the old one stays behind, transferred.
    opened, labels = _opened(new_issue, to_project)
    moved.update(iid=new_issue.id("number"), new_issue_id=new_issue.id("id"))
    pending: Pending = [(IssueOpened, opened), (IssueTransferred, moved)]
    if new_issue.opt_text("state") == "closed":
        pending.append((IssueClosed, {"issue_id": opened["issue_id"], "project_id": to_project}))
    return b.finish(pending, labels=labels)


def _assignment(root: Node, issue: Node, base: dict[str, Any], b: Builder) -> Mapped:
    action = root.text("action")
    assignee = root.opt_obj("assignee")
    if assignee is None:
        return ignored(f"issues {action!r} names no `assignee`; nothing to apply")
    cls = IssueAssigned if action == "assigned" else IssueUnassigned
    return b.finish([(cls, {**base, "user_id": assignee.id("id")})])


def _labeling(root: Node, issue: Node, base: dict[str, Any], b: Builder) -> Mapped:
    action = root.text("action")
    label = root.opt_obj("label")
    if label is None:
        return ignored(f"issues {action!r} names no `label`; nothing to apply")
    if action == "unlabeled":
        return b.finish([(IssueUnlabeled, {**base, "label_id": label.id("id")})])
    labels = {label.id("id"): label_fields(label, base["project_id"])}
    return b.finish([(IssueLabeled, {**base, "label_id": label.id("id")})], labels=labels)


def _milestone(root: Node, issue: Node, base: dict[str, Any], b: Builder) -> Mapped:
    if root.text("action") == "demilestoned":
        milestone = root.opt_obj("milestone")
        milestone_id = milestone.id("id") if milestone is not None else None
        return b.finish([(IssueDemilestoned, {**base, "milestone_id": milestone_id})])
    milestone = root.opt_obj("milestone") or issue.opt_obj("milestone")
    if milestone is None:
        return ignored("issues 'milestoned' names no `milestone`; nothing to apply")
    return b.finish([(IssueMilestoned, {**base, "milestone_id": milestone.id("id")})])


_DETAILED = {
    "edited": _edited,
    "reopened": _reopened,
    "transferred": _transferred,
    "assigned": _assignment,
    "unassigned": _assignment,
    "labeled": _labeling,
    "unlabeled": _labeling,
    "milestoned": _milestone,
    "demilestoned": _milestone,
}


def map_issue_comment(root: Node, b: Builder) -> Mapped:
    """Map one ``issue_comment`` webhook."""
    action = action_of(root)
    comment = root.obj("comment")
    issue = root.obj("issue")
    base = {"comment_id": comment.id("id"), "project_id": root.obj("repository").id("id")}
    if action == "created":
        b.when((comment, "created_at"), (comment, "updated_at"))
        on_pull = issue.has("pull_request")
        created = {
            **base,
            "target_type": "merge_request" if on_pull else "issue",
            "target_id": None if on_pull else issue.id("id"),
            "target_iid": issue.id("number") if on_pull else None,
            "author_id": comment.obj("user").id("id"),
            "body": comment.opt_text("body") or "",
        }
        return b.finish([(CommentCreated, created)])
    if action == "edited":
        b.when((comment, "updated_at"), (comment, "created_at"))
        edited = {**base, "body": comment.opt_text("body") or ""}
        return b.finish([(CommentEdited, edited)])
    if action == "deleted":
        b.when(fallback=[(comment, "updated_at"), (issue, "updated_at")])
        return b.finish([(CommentDeleted, base)])
    return unknown_action("issue_comment", action)
