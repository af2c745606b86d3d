"""Pieces the GitLab hook mappers share: actors, labels and ``changes`` diffs."""

from __future__ import annotations

from typing import Any, NamedTuple

from ...types import Actor, Event
from ..common import Pending
from ..payload import Node

__all__ = [
    "Vocabulary",
    "added_and_removed",
    "change",
    "common_changes",
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
