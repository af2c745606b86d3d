"""Context facts: what a payload says in passing about objects besides its subject.

A webhook about an issue also shows its project (name, full path, default
branch, visibility), the people it names (assignees, reviewers, the author)
and its milestone. :class:`Facts` collects them while a mapper reads the
payload; the :class:`~events.adapters.common.Builder` puts the resulting
:class:`~events.types.Context` on the webhook's first event. Context is
best effort: a part of it the payload gets wrong is left out (and counted in
``skipped``), never a reason to refuse the webhook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from ..errors import InvalidEvent
from ..types import (
    Context,
    GroupFacts,
    IssueFacts,
    MergeRequestFacts,
    MilestoneFacts,
    ProjectFacts,
    UserFacts,
)

__all__ = ["Facts"]

_KINDS: dict[type, str] = {
    ProjectFacts: "projects", GroupFacts: "groups", UserFacts: "users",
    MilestoneFacts: "milestones", IssueFacts: "issues", MergeRequestFacts: "merge_requests",
}


class Facts:
    """Context facts of one webhook, one entry per object (the first one seen wins)."""

    def __init__(self) -> None:
        self._by_kind: dict[str, dict[int, Any]] = {kind: {} for kind in _KINDS.values()}
        self.skipped = 0

    def add(self, cls: type[msgspec.Struct], read: Callable[[], dict[str, Any] | None]) -> None:
        """Record the fact of type ``cls`` whose fields ``read()`` returns (None: nothing
        to record); a payload error in it, or a value out of bounds, skips it."""
        try:
            fields = read()
            if fields is None:
                return
            fact = msgspec.convert({k: v for k, v in fields.items() if v is not None}, cls)
        except (InvalidEvent, msgspec.ValidationError):
            self.skipped += 1
            return
        self._by_kind[_KINDS[cls]].setdefault(fact.id, fact)

    def context(self) -> Context | None:
        """The collected facts (None when there are none)."""
        if not any(self._by_kind.values()):
            return None
        return Context(**{kind: list(found.values()) for kind, found in self._by_kind.items()})
