"""What every canonical event shares: the envelope fields, the actor, commits, and field types.

The bounds here are the ones the projection relies on (DESIGN invariant 10):
ids fit in 63 bits, a time stays a time once converted to UTC, a source is
one lowercase word.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Literal

from msgspec import Meta, Struct

__all__ = [
    "Actor",
    "Commit",
    "Context",
    "Event",
    "EventId",
    "GroupFacts",
    "Id",
    "IssueFacts",
    "MergeRequestFacts",
    "MilestoneFacts",
    "Name",
    "ProjectFacts",
    "Source",
    "Text",
    "UserFacts",
    "UtcTime",
]

EventId = Annotated[str, Meta(min_length=1, max_length=200)]
# `(?![\s\S])` is the end of the text in Python and ECMA alike (`$` also matches before a final newline).
Source = Annotated[str, Meta(pattern=r"^[a-z][a-z0-9_-]{0,31}(?![\s\S])")]
UtcTime = Annotated[datetime, Meta(tz=True)]
#: a signed 64-bit range (what msgspec can bound, and every JSON client can hold)
Id = Annotated[int, Meta(ge=0, le=2**63 - 1)]
Text = Annotated[str, Meta(max_length=1_000_000)]
Name = Annotated[str, Meta(max_length=1000)]


def _check_utc(value: datetime, field: str) -> None:
    """A time must stay a time once converted to UTC (``0001-01-01T00:00+23:59`` does not)."""
    if 1 < value.year < 9999:  # an offset moves a time by less than a day: only the ends overflow
        return
    try:
        value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"`{field}` {value.isoformat()} is out of range once converted to UTC") from None


class Actor(Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Who did it: a user id with the names known at the time."""

    id: Id
    username: Name | None = None
    name: Name | None = None


class Commit(Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """One commit of a push; ``author_id`` is set when the platform knows it."""

    sha: Annotated[str, Meta(min_length=4, max_length=64)]
    message: Text = ""
    author_name: Name | None = None
    author_email: Name | None = None
    author_id: Id | None = None
    timestamp: UtcTime | None = None

    def __post_init__(self) -> None:
        if self.timestamp is not None:
            _check_utc(self.timestamp, "timestamp")


class _Facts(Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """What a payload says, in passing, about an object that is not its subject."""

    id: Id


class ProjectFacts(_Facts):
    """A project as the payload shows it; ``path`` is the full path when ``group_id`` is None
    (``group/sub/project``, GitHub's ``owner/repo``)."""

    name: Name | None = None
    path: Name | None = None
    group_id: Id | None = None
    default_branch: Name | None = None
    visibility: Name | None = None


class GroupFacts(_Facts):
    """A group (GitHub: an organization)."""

    name: Name | None = None
    path: Name | None = None
    parent_id: Id | None = None


class UserFacts(_Facts):
    """A user the payload names (assignee, reviewer, author)."""

    username: Name | None = None
    name: Name | None = None


class MilestoneFacts(_Facts):
    """A milestone the payload shows."""

    title: Name | None = None
    state: Literal["active", "closed"] | None = None
    due_date: Name | None = None
    project_id: Id | None = None


class IssueFacts(_Facts):
    """An issue a comment is about."""

    project_id: Id
    iid: Id | None = None
    title: Name | None = None
    state: Literal["opened", "closed"] | None = None


class MergeRequestFacts(_Facts):
    """A merge request a comment is about."""

    project_id: Id
    iid: Id | None = None
    title: Name | None = None
    state: Literal["opened", "closed", "merged"] | None = None
    source_branch: Name | None = None
    target_branch: Name | None = None


class Context(Struct, frozen=True, kw_only=True, omit_defaults=True, gc=False):
    """Context facts: what a webhook says about objects besides the one its event changes.

    The graph records them beneath what the objects' own events set (older or
    equal information: never over a rename logged earlier).
    """

    projects: list[ProjectFacts] = []
    groups: list[GroupFacts] = []
    users: list[UserFacts] = []
    milestones: list[MilestoneFacts] = []
    issues: list[IssueFacts] = []
    merge_requests: list[MergeRequestFacts] = []


class Event(Struct, frozen=True, kw_only=True, omit_defaults=True, tag_field="type", gc=False):
    """Fields every canonical event carries (``context``: see :class:`Context`)."""

    event_id: EventId
    source: Source
    occurred_at: UtcTime
    actor: Actor | None = None
    v: Annotated[int, Meta(ge=1)] = 1
    context: Context | None = None

    def __post_init__(self) -> None:
        _check_utc(self.occurred_at, "occurred_at")
