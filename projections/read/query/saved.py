"""The four named questions of :mod:`projections.read.questions` as query documents.

Each function returns the document (a dict) for its arguments; run it with
:func:`projections.read.query.execute.run_query`. Node references are ids or paths,
as everywhere. ``fleet query run --saved NAME -p key=value`` runs one from the shell.
"""

from __future__ import annotations

from typing import Any

from .schema import MAX_HOPS

__all__ = ["SAVED", "authored", "blocks", "closed_by", "open_issues"]


def open_issues(project: str, label: str | None = None, limit: int = 100) -> dict:
    """Open issues of ``project``; with ``label`` (a name, or a label id) only those carrying it."""
    select: dict[str, Any] = {
        "type": "Issue",
        "where": {"project_id": {"eq": {"node": project}}, "state": "opened"},
    }
    if label is not None:
        node = {"id": label} if label.startswith("label:") else {
            "type": "Label", "where": {"name": label, "project_id": {"eq": {"node": project}}}}
        select["with"] = [{"edge": "HAS_LABEL", "node": node}]
    return {"type": "nodes", "select": select, "limit": limit}


def closed_by(issue: str) -> dict:
    """Commits and merge requests whose closing keywords name ``issue``."""
    return {"type": "traversal", "from": {"id": issue, "type": "Issue"},
            "steps": [{"edges": ["CLOSES"], "direction": "in"}], "limit": 1000}


def authored(project: str, user: str | None = None, limit: int = 1000) -> dict:
    """With ``user``: what they authored in ``project`` (its ``project_id``, or for commits an
    IN_PROJECT edge). Without: per author and type, how many of the project's issues, merge
    requests and commits they wrote (an aggregate)."""
    if user is not None:
        in_project = {"any": [
            {"where": {"project_id": {"eq": {"node": project}}}},
            {"where": {"project_id": {"exists": False}},
             "with": [{"edge": "IN_PROJECT", "node": {"id": project}}]},
        ]}
        return {"type": "traversal", "from": {"id": user},
                "steps": [{"edges": ["AUTHORED"], "direction": "out", "select": in_project}],
                "limit": limit}
    return {"type": "aggregate", "from": {"id": project, "type": "Project"},
            "steps": [{"edges": ["IN_PROJECT"], "direction": "in",
                       "select": {"type": ["Issue", "MergeRequest", "Commit"]}}],
            "group_by": [{"edge": "AUTHORED", "direction": "in"}, {"node_type": True}],
            "order_by": {"by": "key"}, "limit": 1000}


def blocks(issue: str, transitive: bool = True, max_depth: int = MAX_HOPS, limit: int = 1000) -> dict:
    """Issues ``issue`` blocks, with their distance (``depth``), at most 3 hops away: the
    language walks at most :data:`~.schema.MAX_HOPS` hops (``questions.blocks`` goes to 20)."""
    depth = min(max_depth, MAX_HOPS) if transitive else 1
    return {"type": "traversal", "from": {"id": issue, "type": "Issue"},
            "steps": [{"edges": ["BLOCKS"], "direction": "out", "depth": depth}],
            "order_by": {"by": "depth"}, "limit": limit}


#: name -> the function building its document
SAVED = {"open-issues": open_issues, "closed-by": closed_by, "authored": authored, "blocks": blocks}
