"""Realistic questions about a project's life, answered from the graph.

Each takes a :class:`~projections.read.reader.GraphReader` and node references in
any form it resolves (``project:gitlab:7``, ``gitlab:group/project``,
``gitlab:group/project#12``), and plans the cheapest walk: from a label to its
issues rather than through every issue of the project, along BLOCKS edges
rather than the whole graph.
"""

from __future__ import annotations

from collections import deque
from itertools import islice

from projections.errors import QueryError, UnknownNode
from projections.model.indexing import index_prefix
from projections.model.keys import CODES, format_key, key_int, key_source, key_type, source_prefix
from projections.model.ontology import INDEXES, edge_type
from projections.read.paging import (
    COUNT_MAX,
    check_limit,
    count_bounded,
    decode_cursor,
    encode_cursor,
    fingerprint,
)
from projections.read.reader import GraphReader
from projections.read.results import Node, Page
from projections.read.snapshot import Snapshot, edge_position

__all__ = ["authored", "blocks", "blocks_page", "closed_by", "open_issues", "open_issues_page"]

#: cursor kinds (:mod:`.paging`) of the questions' pages
CURSOR_OPEN_ISSUES, CURSOR_CLOSED_BY, CURSOR_AUTHORED = 11, 12, 13

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
    """Open issues of ``project``, only those with ``label`` (a name or id) if given: the
    first ``limit`` of them (:func:`open_issues_page` says how many there are)."""
    check_limit(limit)
    with reader.snapshot() as snap:
        keys, _, _, pid = _open_issue_keys(snap, project, label, None)
        return [node for _, node in zip(range(limit), _open_nodes(snap, keys, pid))]


def open_issues_page(reader: GraphReader, project: str, *, label: str | None = None,
                     limit: int = 100, after: str | None = None, count_max: int = COUNT_MAX
                     ) -> Page:
    """A page of :func:`open_issues`, in issue key order, with the total (exact without a
    label; with one, counted up to ``count_max``) and the cursor to the next page."""
    check_limit(limit)
    with reader.snapshot() as snap:
        first, query, exact, pid = _open_issue_keys(snap, project, label, None)
        position = None if not after else decode_cursor(after, CURSOR_OPEN_ISSUES, query)
        keys = first if position is None else _open_issue_keys(snap, project, label, position)[0]
        found = list(zip(range(limit + 1), _open_nodes(snap, keys, pid, with_keys=True)))
        more = len(found) > limit
        items = [node for _, (_, node) in found[:limit]]
        cursor = encode_cursor(CURSOR_OPEN_ISSUES, query, found[limit - 1][1][0]) if more else None
        if exact is not None:
            total, lower = exact, False
        else:
            total, lower = count_bounded(_open_nodes(snap, _open_issue_keys(
                snap, project, label, None)[0], pid), count_max)
    return Page(items, cursor, total, lower, more)


def _open_issue_keys(snap: Snapshot, project: str, label: str | None, after: bytes | None):
    """``(candidate issue keys after ``after``, the query's fingerprint, exact total or None,
    the project's id)``."""
    pkey = _project(snap, project)
    pid, source = key_int(pkey), key_source(pkey)
    if label is None:
        entry = index_prefix(_ISSUE_BY_PROJECT_STATE, source_prefix(source), [pid, "opened"])
        c = snap.cursor(snap.store.env.idx)
        exact = c.count() if c.set_key(entry) else 0
        return snap.index_scan(entry, after), fingerprint(pkey), exact, pid
    lkey = _label(snap, source, pid, label)
    position = None if after is None else edge_position(next(iter(_HAS_LABEL)), "in", after)
    keys = (other for _, _, other in snap.edges_after(lkey, "in", _HAS_LABEL, position)
            if other[0] == _ISSUE)
    return keys, fingerprint(pkey, lkey), None, pid


def _open_nodes(snap: Snapshot, keys, pid: int, *, with_keys: bool = False):
    """The open issues of project ``pid`` among ``keys`` (re-checked against their properties)."""
    for key in keys:
        props = snap.props(key)
        if props and props.get("state") == "opened" and props.get("project_id") == pid:
            node = Node(format_key(key), "Issue", props)
            yield (key, node) if with_keys else node


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


def closed_by(reader: GraphReader, issue: str, *, limit: int = 100, after: str | None = None
              ) -> Page:
    """Commits and merge requests whose closing keywords name ``issue``, a page at a time.

    A commit counts when it was pushed to the default branch; a merge request
    says so in its description (check its ``state`` for ``merged``). The
    total is exact.
    """
    check_limit(limit)
    with reader.snapshot() as snap:
        key = _issue(snap, issue)
        query = fingerprint(key)
        position = None if not after else decode_cursor(after, CURSOR_CLOSED_BY, query)
        found = list(islice(snap.edges_after(key, "in", _CLOSES, position), limit + 1))
        more = len(found) > limit
        del found[limit:]
        items = [snap.node(other) for _, _, other in found]
        total = snap.edge_count(key, "in", _CLOSES)
    cursor = encode_cursor(CURSOR_CLOSED_BY, query, edge_position(*found[-1])) if more else None
    return Page(items, cursor, total, False, more)


def authored(reader: GraphReader, project: str, *, user: str | None = None,
             limit: int = 1000, after: str | None = None, count_max: int = COUNT_MAX) -> dict:
    """Who authored what in ``project``.

    With ``user``: a page of that user's issues, merge requests, commits and
    comments in the project (``items``, with ``next``, ``total`` counted up to
    ``count_max``, ``total_is_lower_bound`` and ``truncated``, as a
    :class:`Page` has them). Without: per user, how many of each type,
    counted over the project's first ``limit * 100`` issues, merge requests
    and commits (``truncated`` when there were more).
    """
    check_limit(limit)
    with reader.snapshot() as snap:
        pkey = _project(snap, project)
        pid = key_int(pkey)
        if user is not None:
            ukey = snap.resolve(user)
            query = fingerprint(pkey, ukey)
            position = None if not after else decode_cursor(after, CURSOR_AUTHORED, query)

            def inside(edges):
                for edge in edges:
                    other = edge[2]
                    props = snap.props(other) or {}
                    if props.get("project_id") == pid or ("project_id" not in props and any(
                            o == pkey for _, _, o in snap.adjacent(other, "out", _IN_PROJECT))):
                        yield edge, props

            found = list(islice(inside(snap.edges_after(ukey, "out", _AUTHORED, position)), limit + 1))
            more = len(found) > limit
            del found[limit:]
            items = [Node(format_key(other), key_type(other).name, props).as_dict()
                     for (_, _, other), props in found]
            cursor = (encode_cursor(CURSOR_AUTHORED, query, edge_position(*found[-1][0]))
                      if more else None)
            total, lower = count_bounded(inside(snap.edges_after(ukey, "out", _AUTHORED)), count_max)
            page = Page(items, cursor, total, lower, more).as_dict()
            return {"project": format_key(pkey), "user": format_key(ukey), **page}
        summary: dict[str, dict[str, int]] = {}
        seen = 0
        truncated = False
        for _, _, member in snap.adjacent(pkey, "in", _IN_PROJECT):
            type_name = key_type(member).name
            if type_name not in ("Issue", "MergeRequest", "Commit"):
                continue
            if seen >= limit * 100:
                truncated = True
                break
            for _, _, author in snap.adjacent(member, "in", _AUTHORED):
                per = summary.setdefault(format_key(author), {})
                per[type_name] = per.get(type_name, 0) + 1
            seen += 1
        return {"project": format_key(pkey), "authors": summary, "counted": seen,
                "truncated": truncated}


def blocks(reader: GraphReader, issue: str, *, transitive: bool = True,
           max_depth: int = 20, limit: int = 1000) -> list[dict]:
    """Issues ``issue`` blocks, with their distance (1 = directly), breadth first."""
    return blocks_page(reader, issue, transitive=transitive, max_depth=max_depth, limit=limit).items


def blocks_page(reader: GraphReader, issue: str, *, transitive: bool = True,
                max_depth: int = 20, limit: int = 1000) -> Page:
    """:func:`blocks` as a page that says whether ``limit`` cut it.

    A breadth-first walk has no key order to resume from, so it has no
    cursor: ``truncated`` says to raise ``limit``, and ``total`` is then a
    lower bound.
    """
    check_limit(limit)
    out: list[dict] = []
    with reader.snapshot() as snap:
        key = _issue(snap, issue)
        seen = {key}
        queue = deque([(key, 0)])
        while queue and len(out) <= limit:
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
    more = len(out) > limit
    return Page(out[:limit], None, len(out), more, more)
