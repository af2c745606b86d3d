"""Git pushes, as both platforms describe them, -> ref and commit events.

A push names a ref and its old and new sha; an all-zero sha means the ref did
not exist before (created) or does not exist after (deleted). The mapping is:

* deleted: ``ref.deleted``;
* created: ``ref.created`` (with the new sha), then ``commits.pushed`` when
  the push carried commits;
* otherwise: ``commits.pushed`` for a branch (also with no commits: a
  force-push that moved the branch back is still a new head), and
  ``ref.created`` for a tag that was moved to another commit.

``ref.created`` / ``ref.deleted`` carry the short name (``main``) and the ref
type; ``commits.pushed`` carries the full ref (``refs/heads/main``).
"""

from __future__ import annotations

from typing import Literal

from ..gitrefs import is_zero_sha
from ..types import Commit, CommitsPushed, RefCreated, RefDeleted
from .common import Pending, construct
from .payload import Node

__all__ = ["commit_of", "push_events"]

# GitLab hides private emails this way; it is not an address.
_REDACTED = "[REDACTED]"


def commit_of(node: Node) -> Commit:
    """One commit of a push payload (GitLab and GitHub use the same shape)."""
    author = node.opt_obj("author")
    email = author.opt_text("email") if author is not None else None
    return construct(
        Commit,
        sha=node.text("id"),
        message=node.opt_text("message") or "",
        author_name=author.opt_text("name") if author is not None else None,
        author_email=None if email == _REDACTED else email,
        timestamp=node.time("timestamp"),
    )


def push_events(
    project_id: int,
    ref: str,
    ref_type: Literal["branch", "tag"],
    short: str,
    *,
    before: str | None,
    after: str,
    commits: list[Commit],
) -> Pending:
    """The canonical events of one pushed ref (see the module docstring)."""
    base = {"project_id": project_id}
    if is_zero_sha(after):
        return [(RefDeleted, {**base, "ref": short, "ref_type": ref_type})]
    created = is_zero_sha(before)
    pending: Pending = []
    if created or ref_type == "tag":
        pending.append((RefCreated, {**base, "ref": short, "ref_type": ref_type, "sha": after}))
    if commits or (ref_type == "branch" and not created):
        pushed = {
            **base,
            "ref": ref,
            "after": after,
            "before": None if created else before,
            "commits": commits,
        }
        pending.append((CommitsPushed, pushed))
    return pending
