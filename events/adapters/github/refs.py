"""GitHub ``push``, ``create`` and ``delete`` webhooks -> ref and commit events.

``push`` maps as described in :mod:`events.adapters.pushes`, dated by the
repository's ``pushed_at`` (epoch seconds in this webhook only). ``create`` /
``delete`` map to ``ref.created`` / ``ref.deleted``. GitHub sends both a push
and a create (or delete) webhook for a new (or deleted) ref; both map, and the
projection's upsert makes the second a no-op.
"""

from __future__ import annotations

from ...errors import InvalidEvent
from ...gitrefs import split_ref
from ...types import RefCreated, RefDeleted
from ..common import Builder, Mapped, ignored
from ..payload import Node
from ..pushes import commit_of, push_events

__all__ = ["map_create", "map_delete", "map_push"]

_REF_TYPES = ("branch", "tag")


def map_push(root: Node, b: Builder) -> Mapped:
    """Map one ``push`` webhook."""
    ref = root.text("ref")
    split = split_ref(ref)
    if split is None:
        return ignored(f"pushes to {ref!r} are neither branches nor tags")
    ref_type, short = split
    repo = root.obj("repository")
    head = root.opt_obj("head_commit")
    fallback = [(head, "timestamp")] if head is not None else []
    b.when((repo, "pushed_at"), fallback=[*fallback, (repo, "updated_at")])
    after = root.text("after")
    if not after:
        raise InvalidEvent("schema", f"Expected a commit sha, got '' - at `{root.at('after')}`")
    before = root.opt_text("before")
    # `created` / `deleted` are authoritative; the zero shas agree with them.
    if root.flag("created"):
        before = None
    if root.flag("deleted"):
        after = "0" * 40
    pending = push_events(
        repo.id("id"),
        ref,
        ref_type,
        short,
        before=before,
        after=after,
        commits=[commit_of(node) for node in root.objs("commits")],
    )
    return b.finish(pending, if_empty=f"push to {ref!r} changed nothing")


def _ref(root: Node) -> tuple[int, dict]:
    repo = root.obj("repository")
    ref_type = root.text("ref_type")
    if ref_type not in _REF_TYPES:
        raise InvalidEvent(
            "schema", f"Expected `branch` or `tag`, got {ref_type!r} - at `{root.at('ref_type')}`"
        )
    return repo, {"project_id": repo.id("id"), "ref": root.text("ref"), "ref_type": ref_type}


def map_create(root: Node, b: Builder) -> Mapped:
    """Map one ``create`` webhook (a branch or tag was created)."""
    repo, fields = _ref(root)
    # The ref itself has no timestamp; the repository's push time is close.
    b.when(fallback=[(repo, "pushed_at"), (repo, "updated_at")])
    return b.finish([(RefCreated, fields)])


def map_delete(root: Node, b: Builder) -> Mapped:
    """Map one ``delete`` webhook (a branch or tag was deleted)."""
    repo, fields = _ref(root)
    b.when(fallback=[(repo, "pushed_at"), (repo, "updated_at")])
    return b.finish([(RefDeleted, fields)])
