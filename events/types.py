"""Canonical SDLC events, schema version 1.

Every event is a frozen msgspec Struct tagged by ``type`` (``issue.opened``),
one member of the :data:`Event` union. Events carry stable numeric ids of the
entities they touch, never paths or titles (those change). Ids are scoped by
``source``: GitLab's issue 12 and GitHub's issue 12 are different nodes.

Schema evolution rules (see README, "Event contract"):

* a new field always has a default, so older producers stay valid;
* a field never changes type or meaning; a breaking change gets a new ``v``
  and an upcaster in :mod:`events.upcast`, applied on read;
* stored events are never rewritten.
"""

from __future__ import annotations

from typing import Literal, Union

from .envelope import (
    Actor,
    Commit,
    Context,
    Event,
    GroupFacts,
    Id,
    IssueFacts,
    MergeRequestFacts,
    MilestoneFacts,
    Name,
    ProjectFacts,
    Text,
    UserFacts,
)

__all__ = [
    "EVENT_TYPES",
    "Actor",
    "AnyEvent",
    "Commit",
    "Context",
    "Event",
    "GroupFacts",
    "IssueFacts",
    "MergeRequestFacts",
    "MilestoneFacts",
    "ProjectFacts",
    "UserFacts",
    "subject_for",
]


def _check_membership(event: "MemberAdded | MemberUpdated | MemberRemoved") -> None:
    if event.project_id is None and event.group_id is None:
        raise ValueError("a membership names its project (`project_id`) or its group (`group_id`)")


def _tag(name: str) -> dict:
    return {"tag": name}


# --- groups, projects, users, members ------------------------------------


class GroupCreated(Event, **_tag("group.created")):
    group_id: Id
    name: Name
    path: Name
    parent_id: Id | None = None


class GroupUpdated(Event, **_tag("group.updated")):
    group_id: Id
    name: Name | None = None
    path: Name | None = None


class GroupDeleted(Event, **_tag("group.deleted")):
    group_id: Id


class ProjectCreated(Event, **_tag("project.created")):
    project_id: Id
    name: Name
    path: Name
    group_id: Id | None = None
    default_branch: Name | None = None
    visibility: Name | None = None


class ProjectRenamed(Event, **_tag("project.renamed")):
    project_id: Id
    name: Name
    path: Name


class ProjectUpdated(Event, **_tag("project.updated")):
    """Settings of a project changed: what is set is the new value."""

    project_id: Id
    name: Name | None = None
    path: Name | None = None
    default_branch: Name | None = None
    visibility: Name | None = None


class ProjectTransferred(Event, **_tag("project.transferred")):
    project_id: Id
    group_id: Id | None
    path: Name


class ProjectArchived(Event, **_tag("project.archived")):
    project_id: Id


class ProjectUnarchived(Event, **_tag("project.unarchived")):
    project_id: Id


class ProjectDeleted(Event, **_tag("project.deleted")):
    project_id: Id


class ProjectForked(Event, **_tag("project.forked")):
    project_id: Id
    forked_from_id: Id
    name: Name
    path: Name
    group_id: Id | None = None


class UserCreated(Event, **_tag("user.created")):
    user_id: Id
    username: Name
    name: Name | None = None


class UserUpdated(Event, **_tag("user.updated")):
    user_id: Id
    username: Name | None = None
    name: Name | None = None


class UserDeleted(Event, **_tag("user.deleted")):
    user_id: Id


class MemberAdded(Event, **_tag("member.added")):
    user_id: Id
    project_id: Id | None = None
    group_id: Id | None = None
    role: Name | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_membership(self)


class MemberUpdated(Event, **_tag("member.updated")):
    user_id: Id
    project_id: Id | None = None
    group_id: Id | None = None
    role: Name | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_membership(self)


class MemberRemoved(Event, **_tag("member.removed")):
    user_id: Id
    project_id: Id | None = None
    group_id: Id | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_membership(self)


# --- labels and milestones -----------------------------------------------


class LabelCreated(Event, **_tag("label.created")):
    label_id: Id
    name: Name
    project_id: Id | None = None
    group_id: Id | None = None
    color: Name | None = None


class LabelUpdated(Event, **_tag("label.updated")):
    label_id: Id
    name: Name | None = None
    color: Name | None = None


class LabelDeleted(Event, **_tag("label.deleted")):
    label_id: Id


MilestoneState = Literal["active", "closed"]


class MilestoneCreated(Event, **_tag("milestone.created")):
    milestone_id: Id
    project_id: Id | None
    title: Name
    state: MilestoneState = "active"
    due_date: Name | None = None


class MilestoneUpdated(Event, **_tag("milestone.updated")):
    milestone_id: Id
    title: Name | None = None
    state: MilestoneState | None = None
    due_date: Name | None = None


class MilestoneDeleted(Event, **_tag("milestone.deleted")):
    milestone_id: Id


# --- issues ----------------------------------------------------------------


class IssueEvent(Event):
    """Base of issue events: the issue and the project it lives in."""

    issue_id: Id
    project_id: Id


class IssueOpened(IssueEvent, **_tag("issue.opened")):
    iid: Id
    title: Name
    author_id: Id
    description: Text = ""
    label_ids: list[Id] = []
    assignee_ids: list[Id] = []
    milestone_id: Id | None = None
    confidential: bool = False


class IssueEdited(IssueEvent, **_tag("issue.edited")):
    title: Name | None = None
    description: Text | None = None


class IssueLabeled(IssueEvent, **_tag("issue.labeled")):
    label_id: Id


class IssueUnlabeled(IssueEvent, **_tag("issue.unlabeled")):
    label_id: Id


class IssueAssigned(IssueEvent, **_tag("issue.assigned")):
    user_id: Id


class IssueUnassigned(IssueEvent, **_tag("issue.unassigned")):
    user_id: Id


class IssueMilestoned(IssueEvent, **_tag("issue.milestoned")):
    milestone_id: Id


class IssueDemilestoned(IssueEvent, **_tag("issue.demilestoned")):
    milestone_id: Id | None = None


class IssueClosed(IssueEvent, **_tag("issue.closed")):
    pass


class IssueReopened(IssueEvent, **_tag("issue.reopened")):
    pass


LinkType = Literal["relates_to", "blocks", "is_blocked_by"]


class IssueLinked(IssueEvent, **_tag("issue.linked")):
    target_issue_id: Id
    link_type: LinkType = "relates_to"


class IssueUnlinked(IssueEvent, **_tag("issue.unlinked")):
    target_issue_id: Id
    link_type: LinkType = "relates_to"


class IssueTransferred(IssueEvent, **_tag("issue.transferred")):
    """The issue moved to ``to_project_id``; ``iid`` is its number there. With
    ``new_issue_id`` (GitHub), the move made a new issue: the old one leaves its
    project, marked transferred to the new one."""

    to_project_id: Id
    iid: Id | None = None
    new_issue_id: Id | None = None


class IssueDeleted(IssueEvent, **_tag("issue.deleted")):
    pass


# --- merge requests ----------------------------------------------------------


class MergeRequestEvent(Event):
    """Base of merge request (pull request) events."""

    merge_request_id: Id
    project_id: Id


class MergeRequestOpened(MergeRequestEvent, **_tag("merge_request.opened")):
    iid: Id
    title: Name
    author_id: Id
    source_branch: Name
    target_branch: Name
    description: Text = ""
    source_project_id: Id | None = None
    label_ids: list[Id] = []
    assignee_ids: list[Id] = []
    reviewer_ids: list[Id] = []
    milestone_id: Id | None = None
    draft: bool = False


class MergeRequestUpdated(MergeRequestEvent, **_tag("merge_request.updated")):
    title: Name | None = None
    description: Text | None = None
    target_branch: Name | None = None
    draft: bool | None = None


class MergeRequestLabeled(MergeRequestEvent, **_tag("merge_request.labeled")):
    label_id: Id


class MergeRequestUnlabeled(MergeRequestEvent, **_tag("merge_request.unlabeled")):
    label_id: Id


class MergeRequestAssigned(MergeRequestEvent, **_tag("merge_request.assigned")):
    user_id: Id


class MergeRequestUnassigned(MergeRequestEvent, **_tag("merge_request.unassigned")):
    user_id: Id


class MergeRequestReviewRequested(MergeRequestEvent, **_tag("merge_request.review_requested")):
    user_id: Id


class MergeRequestReviewRequestRemoved(
    MergeRequestEvent, **_tag("merge_request.review_request_removed")
):
    user_id: Id


class MergeRequestMilestoned(MergeRequestEvent, **_tag("merge_request.milestoned")):
    milestone_id: Id


class MergeRequestDemilestoned(MergeRequestEvent, **_tag("merge_request.demilestoned")):
    milestone_id: Id | None = None


class MergeRequestMerged(MergeRequestEvent, **_tag("merge_request.merged")):
    merge_commit_sha: Name | None = None


class MergeRequestClosed(MergeRequestEvent, **_tag("merge_request.closed")):
    pass


class MergeRequestReopened(MergeRequestEvent, **_tag("merge_request.reopened")):
    pass


# --- comments, pushes, refs ------------------------------------------------

CommentTarget = Literal["issue", "merge_request", "commit", "snippet"]


class CommentCreated(Event, **_tag("comment.created")):
    comment_id: Id
    project_id: Id
    target_type: CommentTarget
    author_id: Id
    body: Text = ""
    target_id: Id | None = None
    target_sha: Name | None = None
    #: the target's number in its project, for a payload that has no id of it
    #: (GitHub's comment on a pull request)
    target_iid: Id | None = None


class CommentEdited(Event, **_tag("comment.edited")):
    comment_id: Id
    project_id: Id
    body: Text


class CommentDeleted(Event, **_tag("comment.deleted")):
    comment_id: Id
    project_id: Id


class CommitsPushed(Event, **_tag("commits.pushed")):
    project_id: Id
    ref: Name
    after: Name
    before: Name | None = None
    commits: list[Commit] = []


RefType = Literal["branch", "tag"]


class RefCreated(Event, **_tag("ref.created")):
    project_id: Id
    ref: Name
    ref_type: RefType
    sha: Name | None = None


class RefDeleted(Event, **_tag("ref.deleted")):
    project_id: Id
    ref: Name
    ref_type: RefType


AnyEvent = Union[
    GroupCreated,
    GroupUpdated,
    GroupDeleted,
    ProjectCreated,
    ProjectRenamed,
    ProjectUpdated,
    ProjectTransferred,
    ProjectArchived,
    ProjectUnarchived,
    ProjectDeleted,
    ProjectForked,
    UserCreated,
    UserUpdated,
    UserDeleted,
    MemberAdded,
    MemberUpdated,
    MemberRemoved,
    LabelCreated,
    LabelUpdated,
    LabelDeleted,
    MilestoneCreated,
    MilestoneUpdated,
    MilestoneDeleted,
    IssueOpened,
    IssueEdited,
    IssueLabeled,
    IssueUnlabeled,
    IssueAssigned,
    IssueUnassigned,
    IssueMilestoned,
    IssueDemilestoned,
    IssueClosed,
    IssueReopened,
    IssueLinked,
    IssueUnlinked,
    IssueTransferred,
    IssueDeleted,
    MergeRequestOpened,
    MergeRequestUpdated,
    MergeRequestLabeled,
    MergeRequestUnlabeled,
    MergeRequestAssigned,
    MergeRequestUnassigned,
    MergeRequestReviewRequested,
    MergeRequestReviewRequestRemoved,
    MergeRequestMilestoned,
    MergeRequestDemilestoned,
    MergeRequestMerged,
    MergeRequestClosed,
    MergeRequestReopened,
    CommentCreated,
    CommentEdited,
    CommentDeleted,
    CommitsPushed,
    RefCreated,
    RefDeleted,
]

#: tag -> Struct class, for every canonical event type.
EVENT_TYPES: dict[str, type[Event]] = {
    cls.__struct_config__.tag: cls for cls in AnyEvent.__args__  # type: ignore[attr-defined]
}


def subject_for(event: Event, prefix: str = "sdlc") -> str:
    """The JetStream subject an event is published on: ``sdlc.<source>.<type>``."""
    return f"{prefix}.{event.source}.{event.__struct_config__.tag}"


__all__ += sorted(cls.__name__ for cls in EVENT_TYPES.values())
