"""GitLab Push Hook and Tag Push Hook (project or system hook) -> ref and commit events.

See :mod:`events.adapters.pushes` for what a push maps to. A GitLab push has
no timestamp of its own, so ``occurred_at`` is the recorded delivery time when
the caller passes ``received_at``, else the newest commit's timestamp; a push
without commits (a new branch, a deleted branch, any tag) and without
``received_at`` is rejected, as no deterministic time exists for it.
"""

from __future__ import annotations

from ...errors import InvalidEvent
from ...gitrefs import split_ref
from ...types import Actor
from ..common import Builder, Mapped, ignored
from ..payload import Node
from ..pushes import commit_of, push_events

__all__ = ["map_push"]


def map_push(root: Node, b: Builder) -> Mapped:
    """Map one Push Hook or Tag Push Hook (branch or tag from the ref)."""
    ref = root.text("ref")
    split = split_ref(ref)
    if split is None:
        return ignored(f"pushes to {ref!r} are neither branches nor tags")
    ref_type, short = split
    project_id = root.opt_id("project_id")
    if project_id is None:
        project_id = root.obj("project").id("id")
    if root.has("user_id"):
        b.actor = Actor(
            id=root.id("user_id"),
            username=root.opt_text("user_username"),
            name=root.opt_text("user_name"),
        )
    commit_nodes = root.objs("commits")
    # Newest last in GitLab's list; its time is the best stand-in for the push's.
    b.when(fallback=[(node, "timestamp") for node in reversed(commit_nodes)])
    after = root.text("after")
    if not after:
        raise InvalidEvent("schema", f"Expected a commit sha, got '' - at `{root.at('after')}`")
    pending = push_events(
        project_id,
        ref,
        ref_type,
        short,
        before=root.opt_text("before"),
        after=after,
        commits=[commit_of(node) for node in commit_nodes],
    )
    return b.finish(pending, if_empty=f"push to {ref!r} changed nothing")
