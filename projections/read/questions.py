"""Realistic questions about a project's life, answered from the graph.

Each takes a :class:`~projections.read.reader.GraphReader` and node references in
any form it resolves (``project:gitlab:7``, ``gitlab:group/project``,
``gitlab:group/project#12``), and plans the cheapest walk: from a label to its
issues rather than through every issue of the project, along BLOCKS edges
rather than the whole graph.
"""

from __future__ import annotations

from collections import deque

from projections.errors import QueryError, UnknownNode
from projections.model.indexing import index_prefix
from projections.model.keys import CODES, format_key, key_int, key_source, key_type, source_prefix
from projections.model.ontology import INDEXES, edge_type
from projections.read.reader import GraphReader
from projections.read.results import Node
from projections.read.snapshot import Snapshot

__all__ = ["open_issues", "closed_by", "authored", "blocks"]

_ISSUE = CODES["Issue"][0]
_PROJECT = CODES["Project"][0]
_HAS_LABEL = frozenset({edge_type("HAS_LABEL").code})
_CLOSES = frozenset({edge_type("CLOSES").code})
_AUTHORED = frozenset({edge_type("AUTHORED").code})
_IN_PROJECT = frozenset({edge_type("IN_PROJECT").code})
_BLOCKS = frozenset({edge_type("BLOCKS").code})
_ISSUE_BY_PROJECT_STATE = next(i for i in INDEXES if i.node_type == "Issue"
                               and i.fields == ("project_id", "state"))
_LABEL_BY_PROJECT_NAME = next(i for i in INDEXES if i.node_type == "Label")


def _project(snap: Snapshot, ref: str) -> bytes:
    key = snap.resolve(ref)
    if key[0] != _PROJECT:
        raise QueryError(f"{ref!r} is a {key_type(key).name}, not a project")
    return key


def open_issues(reader: GraphReader, project: str, *, label: str | None = None,
                limit: int = 100) -> list[Node]:
    """Open issues of ``project``, only those with ``label`` (a name or id) if given."""
    out: list[Node] = []
    with reader.snapshot() as snap:
        pkey = _project(snap, project)
        pid, source = key_int(pkey), key_source(pkey)
        if label is None:
            entry = index_prefix(_ISSUE_BY_PROJECT_STATE, source_prefix(source), [pid, "opened"])
            candidates = snap.index_scan(entry)
        else:
            lkey = _label(snap, source, pid, label)
            candidates = (other for _, _, other in snap.adjacent(lkey, "in", _HAS_LABEL)
                          if other[0] == _ISSUE)
        for key in candidates:
            props = snap.props(key)
            if props and props.get("state") == "opened" and props.get("project_id") == pid:
                out.append(Node(format_key(key), "Issue", props))
                if len(out) >= limit:
                    break
    return out


def _label(snap: Snapshot, source: str, pid: int, label: str) -> bytes:
    if label.startswith("label:"):
        return snap.resolve(label)
    entry = index_prefix(_LABEL_BY_PROJECT_NAME, source_prefix(source), [pid, label])
    for key in snap.index_scan(entry):
        return key
    raise UnknownNode(f"project {source}:{pid} has no label named {label!r}")


def _issue(snap: Snapshot, ref: str) -> bytes:
    key = snap.resolve(ref)
    if key[0] != _ISSUE:
        raise QueryError(f"{ref!r} is a {key_type(key).name}, not an issue")
    if not snap.exists(key):
        raise UnknownNode(f"no issue {format_key(key)} in the graph")
    return key


def closed_by(reader: GraphReader, issue: str) -> list[Node]:
    """Commits and merge requests whose closing keywords name ``issue``.

    A commit counts when it was pushed to the default branch; a merge request
    says so in its description (check its ``state`` for ``merged``).
    """
    with reader.snapshot() as snap:
        key = _issue(snap, issue)
        return [snap.node(other) for _, _, other in snap.adjacent(key, "in", _CLOSES)]


def authored(reader: GraphReader, project: str, *, user: str | None = None,
             limit: int = 1000) -> dict:
    """Who authored what in ``project``.

    With ``user``: that user's issues, merge requests, commits and comments in
    the project (up to ``limit``). Without: per user, how many of each type,
    counted over the project's issues, merge requests and commits.
    """
    with reader.snapshot() as snap:
        pkey = _project(snap, project)
        pid = key_int(pkey)
        if user is not None:
            ukey = snap.resolve(user)
            items = []
            for _, _, other in snap.adjacent(ukey, "out", _AUTHORED):
                props = snap.props(other) or {}
                inside = props.get("project_id") == pid or (
                    "project_id" not in props and any(
                        o == pkey for _, _, o in snap.adjacent(other, "out", _IN_PROJECT)))
                if inside:
                    items.append(Node(format_key(other), key_type(other).name, props).as_dict())
                    if len(items) >= limit:
                        break
            return {"project": format_key(pkey), "user": format_key(ukey), "items": items}
        summary: dict[str, dict[str, int]] = {}
        seen = 0
        for _, _, member in snap.adjacent(pkey, "in", _IN_PROJECT):
            type_name = key_type(member).name
            if type_name not in ("Issue", "MergeRequest", "Commit"):
                continue
            for _, _, author in snap.adjacent(member, "in", _AUTHORED):
                per = summary.setdefault(format_key(author), {})
                per[type_name] = per.get(type_name, 0) + 1
            seen += 1
            if seen >= limit * 100:
                break
        return {"project": format_key(pkey), "authors": summary}


def blocks(reader: GraphReader, issue: str, *, transitive: bool = True,
           max_depth: int = 20, limit: int = 1000) -> list[dict]:
    """Issues ``issue`` blocks, with their distance (1 = directly), breadth first."""
    out: list[dict] = []
    with reader.snapshot() as snap:
        key = _issue(snap, issue)
        seen = {key}
        queue = deque([(key, 0)])
        while queue and len(out) < limit:
            node, depth = queue.popleft()
            if depth >= (max_depth if transitive else 1):
                continue
            for _, _, other in snap.adjacent(node, "out", _BLOCKS):
                if other in seen:
                    continue
                seen.add(other)
                props = snap.props(other) or {}
                out.append({"id": format_key(other), "depth": depth + 1,
                            "title": props.get("title"), "state": props.get("state")})
                queue.append((other, depth + 1))
    return out
