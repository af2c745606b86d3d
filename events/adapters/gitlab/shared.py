"""Pieces the GitLab hook mappers share: actors, labels and ``changes`` diffs."""

from __future__ import annotations

from typing import Any, NamedTuple

from ...errors import InvalidEvent
from ...types import Actor, Event, IssueFacts, MergeRequestFacts, ProjectFacts, UserFacts
from ..common import Pending
from ..facts import Facts
from ..payload import Node

__all__ = [
    "Vocabulary",
    "added_and_removed",
    "change",
    "common_changes",
    "context_facts",
    "label_catalog",
    "project_id_of",
    "unmodeled",
    "user_actor",
]

# Keys of ``changes`` that say nothing a graph models (bookkeeping and time tracking).
_NOISE = frozenset(
    {
        "updated_at",
        "updated_by_id",
        "last_edited_at",
        "last_edited_by_id",
        "total_time_spent",
        "time_change",
        "time_estimate",
        "relative_position",
    }
)


class Vocabulary(NamedTuple):
    """The canonical classes one GitLab object kind (issue, merge request) maps to."""

    edited: type[Event]
    labeled: type[Event]
    unlabeled: type[Event]
    assigned: type[Event]
    unassigned: type[Event]
    milestoned: type[Event]
    demilestoned: type[Event]


def user_actor(root: Node) -> Actor | None:
    """The actor of a hook: its ``user`` object, or None when the hook names none."""
    user = root.opt_obj("user")
    if user is None:
        return None
    return Actor(id=user.id("id"), username=user.opt_text("username"), name=user.opt_text("name"))


def project_id_of(root: Node, attrs: Node, key: str = "project_id") -> int | None:
    """The project an object lives in: ``object_attributes.<key>``, else ``project.id``."""
    found = attrs.opt_id(key)
    if found is None:
        project = root.opt_obj("project")
        found = project.opt_id("id") if project is not None else None
    return found


def label_catalog(root: Node, attrs: Node) -> dict[int, dict[str, Any]]:
    """``label.created`` fields for every label the hook shows, keyed by label id."""
    nodes = [*attrs.objs("labels"), *root.objs("labels")]
    changes = root.opt_obj("changes")
    labels = change(changes, "labels")
    if labels is not None:
        nodes += [*labels.objs("previous"), *labels.objs("current")]
    catalog: dict[int, dict[str, Any]] = {}
    for label in nodes:
        label_id = label.id("id")
        if label_id not in catalog:
            catalog[label_id] = {
                "label_id": label_id,
                "name": label.text("title"),
                "project_id": label.opt_id("project_id"),
                "group_id": label.opt_id("group_id"),
                "color": label.opt_text("color"),
            }
    return catalog


def change(changes: Node | None, key: str) -> Node | None:
    """The ``{previous, current}`` object of one changed attribute, if it changed."""
    if changes is None:
        return None
    return changes.opt_obj(key)


def added_and_removed(before: list[int], after: list[int]) -> tuple[list[int], list[int]]:
    """Ids in ``after`` but not ``before``, and the reverse, each in list order."""
    old, new = set(before), set(after)
    return [i for i in after if i not in old], [i for i in before if i not in new]


def common_changes(changes: Node | None, base: dict[str, Any], words: Vocabulary) -> Pending:
    """Canonical events for the title, description, label, assignee and milestone changes."""
    pending: Pending = []
    if changes is None:
        return pending
    edit: dict[str, Any] = {}
    if (title := change(changes, "title")) is not None:
        edit["title"] = title.text("current")
    if (description := change(changes, "description")) is not None:
        edit["description"] = description.opt_text("current") or ""
    if edit:
        pending.append((words.edited, {**base, **edit}))
    if (labels := change(changes, "labels")) is not None:
        added, removed = added_and_removed(
            labels.object_ids("previous"), labels.object_ids("current")
        )
        pending += [(words.unlabeled, {**base, "label_id": i}) for i in removed]
        pending += [(words.labeled, {**base, "label_id": i}) for i in added]
    if (assignees := change(changes, "assignees")) is not None:
        added, removed = added_and_removed(
            assignees.object_ids("previous"), assignees.object_ids("current")
        )
        pending += [(words.unassigned, {**base, "user_id": i}) for i in removed]
        pending += [(words.assigned, {**base, "user_id": i}) for i in added]
    if (milestone := change(changes, "milestone_id")) is not None:
        current, previous = milestone.opt_id("current"), milestone.opt_id("previous")
        if current is not None:
            pending.append((words.milestoned, {**base, "milestone_id": current}))
        elif previous is not None:
            pending.append((words.demilestoned, {**base, "milestone_id": previous}))
    return pending


def unmodeled(changes: Node | None) -> str:
    """The changed attributes named in an "ignored" reason, noise left out."""
    keys = sorted(k for k in (changes.data if changes is not None else {}) if k not in _NOISE)
    return ", ".join(keys) if keys else "none besides bookkeeping"


# --- context facts ------------------------------------------------------------

_VISIBILITY = {0: "private", 10: "internal", 20: "public"}
_STATES = {"opened": "opened", "reopened": "opened", "closed": "closed", "merged": "merged"}


def _project(facts: Facts, project: Node | None, project_id: int | None = None) -> None:
    if project is None:
        return
    facts.add(ProjectFacts, lambda: {
        "id": project_id if project_id is not None else project.id("id"),
        "name": project.opt_text("name"), "path": project.opt_text("path_with_namespace"),
        "default_branch": project.opt_text("default_branch"),
        "visibility": project.opt_text("visibility")
        or _VISIBILITY.get(project.opt_id("visibility_level"))})  # type: ignore[arg-type]


def _user(facts: Facts, user: Node | None) -> None:
    if user is not None:
        facts.add(UserFacts, lambda: {"id": user.id("id"), "username": user.opt_text("username"),
                                      "name": user.opt_text("name")})


def context_facts(root: Node) -> Facts:
    """What a GitLab hook says besides its subject: its project (and a merge request's
    source and target projects), the people it names, and the issue or merge request a
    note is on."""
    facts = Facts()
    try:
        _project(facts, root.opt_obj("project"))
        _user(facts, root.opt_obj("user"))
        attrs = root.opt_obj("object_attributes")
        for key in ("assignees", "reviewers"):
            users = root.objs(key)
            # Issue hooks list assignees without ids, in the order of `assignee_ids`.
            ids = attrs.ids(f"{key[:-1]}_ids") if attrs is not None else []
            for i, user in enumerate(users):
                if not user.has("id") and len(ids) == len(users):
                    user = Node({**user.data, "id": ids[i]}, user.path)
                _user(facts, user)
        if attrs is not None and root.opt_text("object_kind") == "merge_request":
            for side in ("source", "target"):
                _project(facts, attrs.opt_obj(side), attrs.opt_id(f"{side}_project_id"))
        issue = root.opt_obj("issue")
        if issue is not None:
            facts.add(IssueFacts, lambda: {
                "id": issue.id("id"), "project_id": issue.id("project_id"),
                "iid": issue.opt_id("iid"), "title": issue.opt_text("title"),
                "state": _STATES.get(issue.opt_text("state") or "")})
        mr = root.opt_obj("merge_request")
        if mr is not None:
            facts.add(MergeRequestFacts, lambda: {
                "id": mr.id("id"), "project_id": mr.id("target_project_id"),
                "iid": mr.opt_id("iid"), "title": mr.opt_text("title"),
                "state": _STATES.get(mr.opt_text("state") or ""),
                "source_branch": mr.opt_text("source_branch"),
                "target_branch": mr.opt_text("target_branch")})
    except InvalidEvent:  # an object where an array belongs, or the like: what was read stays
        facts.skipped += 1
    return facts
