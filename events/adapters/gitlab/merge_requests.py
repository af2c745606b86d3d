"""GitLab Merge Request Hook (project hook or system hook) -> merge_request events.

``object_attributes.action`` is one of ``open``, ``reopen``, ``update``,
``close``, ``merge``, ``approved``, ``unapproved``, ``approval``,
``unapproval``. ``open`` maps to ``merge_request.opened``; ``update``,
``close``, ``reopen`` and ``merge`` map every modelled entry of ``changes``
(title, description, target branch, draft, labels, assignees, reviewers,
milestone) to its own event, then the state change. Approvals have no
canonical event and are ignored, as is an update that only pushed commits
(``oldrev``): those commits arrive through push hooks.
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
from .shared import (
    Vocabulary,
    added_and_removed,
    change,
    common_changes,
    label_catalog,
    project_id_of,
    unmodeled,
    user_actor,
)

__all__ = ["map_merge_request"]

_WORDS = Vocabulary(
    edited=MergeRequestUpdated,
    labeled=MergeRequestLabeled,
    unlabeled=MergeRequestUnlabeled,
    assigned=MergeRequestAssigned,
    unassigned=MergeRequestUnassigned,
    milestoned=MergeRequestMilestoned,
    demilestoned=MergeRequestDemilestoned,
)
_APPROVALS = frozenset({"approved", "unapproved", "approval", "unapproval"})
# GitLab's merge_requests.state_id values.
_OPENED, _CLOSED, _MERGED = 1, 2, 3
_STATES = {_OPENED: MergeRequestReopened, _CLOSED: MergeRequestClosed, _MERGED: MergeRequestMerged}
_ACTION_STATES = {"close": _CLOSED, "reopen": _OPENED, "merge": _MERGED}


def map_merge_request(root: Node, b: Builder) -> Mapped:
    """Map one Merge Request Hook."""
    attrs = root.obj("object_attributes")
    action = attrs.text("action")
    if action in _APPROVALS:
        return ignored(
            f"merge request action {action!r} records an approval; "
            "approvals have no canonical event and do not change the graph"
        )
    if action not in ("open", "update", "close", "reopen", "merge"):
        return ignored(f"merge request action {action!r} is not known to this adapter")
    project_id = project_id_of(root, attrs, "target_project_id")
    if project_id is None:
        project_id = attrs.id("target_project_id")  # raises: neither key is present
    b.actor = user_actor(root)
    base = {"merge_request_id": attrs.id("id"), "project_id": project_id}
    labels = label_catalog(root, attrs)
    if action == "open":
        b.when((attrs, "created_at"), (attrs, "updated_at"))
        opened = (MergeRequestOpened, _opened(root, attrs, base))
        return b.finish([opened], labels=labels)
    b.when((attrs, "updated_at"), (attrs, "created_at"))
    changes = root.opt_obj("changes")
    pending = _changes(changes, base)
    state = _ACTION_STATES.get(action)
    if state is None and (state_change := change(changes, "state_id")) is not None:
        state = state_change.opt_id("current")
        if state == _OPENED and state_change.opt_id("previous") != _CLOSED:
            state = None
    if state in _STATES:
        fields = dict(base)
        if state == _MERGED:
            fields["merge_commit_sha"] = attrs.opt_text("merge_commit_sha")
        pending.append((_STATES[state], fields))
    if not pending and attrs.has("oldrev"):
        return ignored(
            "merge request update only pushed commits (oldrev); "
            "the commits arrive through push hooks"
        )
    return b.finish(
        pending,
        labels=labels,
        if_empty=(
            f"merge request {action} changes nothing the graph models "
            f"(changed: {unmodeled(changes)})"
        ),
    )


def _opened(root: Node, attrs: Node, base: dict[str, Any]) -> dict[str, Any]:
    assignee_ids = attrs.ids("assignee_ids")
    if not assignee_ids and attrs.has("assignee_id"):
        assignee_ids = [attrs.id("assignee_id")]
    return {
        **base,
        "iid": attrs.id("iid"),
        "title": attrs.text("title"),
        "author_id": attrs.id("author_id"),
        "source_branch": attrs.text("source_branch"),
        "target_branch": attrs.text("target_branch"),
        "description": attrs.opt_text("description") or "",
        "source_project_id": attrs.opt_id("source_project_id"),
        "label_ids": attrs.object_ids("labels") or root.object_ids("labels"),
        "assignee_ids": assignee_ids,
        "reviewer_ids": attrs.ids("reviewer_ids") or root.object_ids("reviewers"),
        "milestone_id": attrs.opt_id("milestone_id"),
        "draft": attrs.flag("draft", attrs.flag("work_in_progress")),
    }


def _changes(changes: Node | None, base: dict[str, Any]) -> Pending:
    pending = common_changes(changes, base, _WORDS)
    update: dict[str, Any] = {}
    if (target := change(changes, "target_branch")) is not None:
        update["target_branch"] = target.text("current")
    draft = change(changes, "draft") or change(changes, "work_in_progress")
    if draft is not None:
        update["draft"] = draft.flag("current")
    if update:
        # Merge into the title/description update when there is one, so one
        # hook yields one merge_request.updated.
        for i, (cls, fields) in enumerate(pending):
            if cls is MergeRequestUpdated:
                pending[i] = (cls, {**fields, **update})
                break
        else:
            pending.insert(0, (MergeRequestUpdated, {**base, **update}))
    if (reviewers := change(changes, "reviewers")) is not None:
        added, removed = added_and_removed(
            reviewers.object_ids("previous"), reviewers.object_ids("current")
        )
        pending += [(MergeRequestReviewRequestRemoved, {**base, "user_id": i}) for i in removed]
        pending += [(MergeRequestReviewRequested, {**base, "user_id": i}) for i in added]
    return pending
