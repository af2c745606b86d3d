"""Git's conventions that events carry: full ref names and the all-zero object id."""

from __future__ import annotations

from typing import Literal

__all__ = ["is_zero_sha", "split_ref"]

_PREFIXES: dict[str, Literal["branch", "tag"]] = {"refs/heads/": "branch", "refs/tags/": "tag"}


def is_zero_sha(sha: str | None) -> bool:
    """Whether ``sha`` is git's "no object" (all zeros) or absent."""
    return not sha or not sha.strip("0")


def split_ref(ref: str) -> tuple[Literal["branch", "tag"], str] | None:
    """``refs/heads/main`` -> ``("branch", "main")``; None for other refs (notes, pulls)."""
    for prefix, ref_type in _PREFIXES.items():
        if ref.startswith(prefix) and len(ref) > len(prefix):
            return ref_type, ref[len(prefix) :]
    return None
