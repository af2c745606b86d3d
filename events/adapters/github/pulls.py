"""GitHub ``pull_request`` webhooks -> merge_request events.

A pull request is a merge request of the repository it targets:
``merge_request_id`` is the pull request id, ``iid`` its number.

======================================  ===========================================
action                                  canonical event
======================================  ===========================================
opened                                  merge_request.opened (+ label.created)
edited (title, body, base branch)       merge_request.updated
closed                                  merge_request.merged, or .closed if unmerged
reopened                                merge_request.reopened
assigned / unassigned                   merge_request.assigned / .unassigned
labeled / unlabeled                     merge_request.labeled / .unlabeled
milestoned / demilestoned               merge_request.milestoned / .demilestoned
review_requested / _removed (a user)    merge_request.review_requested / _removed
converted_to_draft / ready_for_review   merge_request.updated (draft true / false)
======================================  ===========================================

Ignored: synchronize (its commits arrive as push webhooks), review requests
for a team (no user to link), locked, unlocked, auto_merge_enabled,
auto_merge_disabled, enqueued, dequeued.
"""

from __future__ import annotations

from typing import Any

from ...types import (
    MergeRequestAssigned,
    MergeRequestClosed,
    MergeRequestDemilestoned,
    MergeRequestLabeled,
    MergeRequestMerged,
    MergeRequestMilestoned,
    MergeRequestOpened,
    MergeRequestReopened,
    MergeRequestReviewRequested,
    MergeRequestReviewRequestRemoved,
    MergeRequestUnassigned,
    MergeRequestUnlabeled,
    MergeRequestUpdated,
)
from ..common import Builder, Mapped, Pending, ignored
from ..payload import Node
from .base import action_of, label_fields, not_in_graph, unknown_action, user_ids

__all__ = ["map_pull_request"]

_QUIET = frozenset(
    {"locked", "unlocked", "auto_merge_enabled", "auto_merge_disabled", "enqueued", "dequeued"}
)
# action -> (canonical class, key of the user/label/milestone in the payload, field)
_ONE_THING = {
    "assigned": (MergeRequestAssigned, "assignee", "user_id"),
    "unassigned": (MergeRequestUnassigned, "assignee", "user_id"),
    "labeled": (MergeRequestLabeled, "label", "label_id"),
    "unlabeled": (MergeRequestUnlabeled, "label", "label_id"),
    "milestoned": (MergeRequestMilestoned, "milestone", "milestone_id"),
    "review_requested": (MergeRequestReviewRequested, "requested_reviewer", "user_id"),
    "review_request_removed": (MergeRequestReviewRequestRemoved, "requested_reviewer", "user_id"),
}


def map_pull_request(root: Node, b: Builder) -> Mapped:
    """Map one ``pull_request`` webhook."""
    action = action_of(root)
    pull = root.obj("pull_request")
    project_id = root.obj("repository").id("id")
    base = {"merge_request_id": pull.id("id"), "project_id": project_id}
    if action in _QUIET:
        return not_in_graph("pull_request", action)
    if action == "synchronize":
        return ignored("pull_request 'synchronize' adds commits, which arrive as push webhooks")
    if action == "opened":
        b.when((pull, "created_at"), (pull, "updated_at"))
        labels = {label.id("id"): label_fields(label, project_id) for label in pull.objs("labels")}
        opened = (MergeRequestOpened, _opened(root, pull, base, list(labels)))
        return b.finish([opened], labels=labels)
    if action == "closed":
        if pull.flag("merged") or pull.has("merged_at"):
            b.when((pull, "merged_at"), (pull, "closed_at"), (pull, "updated_at"))
            merged = {**base, "merge_commit_sha": pull.opt_text("merge_commit_sha")}
            return b.finish([(MergeRequestMerged, merged)])
        b.when((pull, "closed_at"), (pull, "updated_at"))
        return b.finish([(MergeRequestClosed, base)])
    b.when((pull, "updated_at"), (pull, "created_at"))
    if action == "reopened":
        return b.finish([(MergeRequestReopened, base)])
    if action in ("converted_to_draft", "ready_for_review"):
        draft = {**base, "draft": action == "converted_to_draft"}
        return b.finish([(MergeRequestUpdated, draft)])
    if action == "edited":
        return b.finish(
            _edited(root, pull, base),
            if_empty="pull_request 'edited' changed neither title, body nor base branch",
        )
    if action == "demilestoned":
        milestone = root.opt_obj("milestone")
        milestone_id = milestone.id("id") if milestone is not None else None
        return b.finish([(MergeRequestDemilestoned, {**base, "milestone_id": milestone_id})])
    if action in _ONE_THING:
        return _one_thing(root, pull, base, action, b)
    return unknown_action("pull_request", action)


def _opened(root: Node, pull: Node, base: dict[str, Any], label_ids: list[int]) -> dict[str, Any]:
    head, target = pull.obj("head"), pull.obj("base")
    head_repo = head.opt_obj("repo")  # null when the fork was deleted
    milestone = pull.opt_obj("milestone")
    number = root.opt_id("number")
    return {
        **base,
        "iid": number if number is not None else pull.id("number"),
        "title": pull.text("title"),
        "author_id": pull.obj("user").id("id"),
        "source_branch": head.text("ref"),
        "target_branch": target.text("ref"),
        "description": pull.opt_text("body") or "",
        "source_project_id": head_repo.id("id") if head_repo is not None else None,
        "label_ids": label_ids,
        "assignee_ids": pull.object_ids("assignees"),
        "reviewer_ids": user_ids(pull, "requested_reviewers"),
        "milestone_id": milestone.id("id") if milestone is not None else None,
        "draft": pull.flag("draft"),
    }


def _edited(root: Node, pull: Node, base: dict[str, Any]) -> Pending:
    changes = root.opt_obj("changes")
    if changes is None:
        return []
    update: dict[str, Any] = {}
    if changes.has("title"):
        update["title"] = pull.text("title")
    if changes.has("body"):
        update["description"] = pull.opt_text("body") or ""
    if changes.has("base"):
        update["target_branch"] = pull.obj("base").text("ref")
    return [(MergeRequestUpdated, {**base, **update})] if update else []


def _one_thing(root: Node, pull: Node, base: dict[str, Any], action: str, b: Builder) -> Mapped:
    cls, key, field = _ONE_THING[action]
    thing = root.opt_obj(key)
    if thing is None and action == "milestoned":
        thing = pull.opt_obj("milestone")
    if thing is None:
        if key == "requested_reviewer" and root.has("requested_team"):
            return ignored(
                f"pull_request {action!r} names a team, not a user; teams are not in the graph"
            )
        return ignored(f"pull_request {action!r} names no `{key}`; nothing to apply")
    labels = None
    if action == "labeled":
        labels = {thing.id("id"): label_fields(thing, base["project_id"])}
    return b.finish([(cls, {**base, field: thing.id("id")})], labels=labels)
