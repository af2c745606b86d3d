"""The pure apply step: one canonical event -> the graph mutations it implies.

``apply(event)`` reads nothing but the event: whatever depends on the graph
(merging properties, cascading deletes, resolving ``group/project#12`` to an
issue) is expressed as a mutation whose semantics the store's
:class:`~projections.fold.overlay.Overlay` implements against the current state.
That keeps this step trivially deterministic and lets a rebuild run it in a
separate process from the store (see :mod:`projections.versions.rebuild`).

Text (descriptions, comments, commit messages) is not stored in the graph; it
stays in the log. Only the references it holds become edges.
"""

from __future__ import annotations

from typing import Callable

from events.errors import InvalidEvent
from events.gitrefs import is_zero_sha, split_ref
from events.references import parse_references
from events.types import EVENT_TYPES, Event
from projections.model import mutations as m
from projections.model.keys import CODES, commit_ref, pack_int, ref_key, source_prefix
from projections.model.ontology import EDGE_TYPES

__all__ = ["apply", "HANDLED_TYPES"]

_E = {e.name: e.code for e in EDGE_TYPES}
IN_GROUP, IN_PROJECT, AUTHORED, ASSIGNED_TO = _E["IN_GROUP"], _E["IN_PROJECT"], _E["AUTHORED"], _E["ASSIGNED_TO"]
REVIEWER, HAS_LABEL, IN_MILESTONE = _E["REVIEWER"], _E["HAS_LABEL"], _E["IN_MILESTONE"]
MENTIONS, CLOSES, RELATES_TO, BLOCKS = _E["MENTIONS"], _E["CLOSES"], _E["RELATES_TO"], _E["BLOCKS"]
MEMBER_OF, COMMENTED_ON, FORKED_FROM, PUSHED = _E["MEMBER_OF"], _E["COMMENTED_ON"], _E["FORKED_FROM"], _E["PUSHED"]
FROM_REF, INTO_REF, MERGED_AS = _E["FROM_REF"], _E["INTO_REF"], _E["MERGED_AS"]

_GROUP, _PROJECT, _USER = CODES["Group"], CODES["Project"], CODES["User"]
_ISSUE, _MR, _LABEL = CODES["Issue"], CODES["MergeRequest"], CODES["Label"]
_MILESTONE, _COMMENT = CODES["Milestone"], CODES["Comment"]

SET, MERGE, ENSURE, DELETE, CREATE = m.SET, m.MERGE, m.ENSURE, m.DELETE, m.CREATE
LINK, UNLINK, CLEAR, REF, ATTACH = m.LINK, m.UNLINK, m.CLEAR, m.REF, m.ATTACH

_TITLE_MAX = 200

Handler = Callable[[Event, bytes, list], None]
_HANDLERS: dict[type, Handler] = {}


def apply(event: Event) -> list[m.Mutation]:
    """The mutations ``event`` implies, in order. Raises ``InvalidEvent`` for nonsense."""
    out: list[m.Mutation] = []
    s = source_prefix(event.source)
    actor = event.actor
    if actor is not None and actor.username is not None:
        # Webhooks rarely announce users: the actor's names seed a user node.
        props = {"username": actor.username}
        if actor.name is not None:
            props["name"] = actor.name
        out.append((ENSURE, _USER + s + pack_int(actor.id), props))
    _HANDLERS[type(event)](event, s, out)
    return out


def _on(*types: type) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for t in types:
            _HANDLERS[t] = fn
        return fn

    return register


def _platform(event: Event) -> str | None:
    return "github" if event.source == "github" else None


def _refs(out: list, src: bytes, text: str | None, event: Event, s: bytes, project_id: int,
          mode: int, branch: str | None = None) -> None:
    if not text or ("#" not in text and "/issues/" not in text and "/work_items/" not in text):
        return
    for ref in parse_references(text, platform=_platform(event)):  # type: ignore[arg-type]
        kind = mode if ref.kind == "closes" else m.MENTION
        out.append((REF, src, kind, s, project_id, ref.number, ref.project_path, branch))


def _props(**values: object) -> dict:
    return {k: v for k, v in values.items() if v is not None}


# --- groups, projects, users, members ------------------------------------

T = EVENT_TYPES


@_on(T["group.created"])
def _group_created(e, s, out):
    g = _GROUP + s + pack_int(e.group_id)
    out.append((CREATE, g, _props(name=e.name, path=e.path, parent_id=e.parent_id)))
    if e.parent_id is not None:
        out.append((ATTACH, g, IN_GROUP, _GROUP + s + pack_int(e.parent_id)))


@_on(T["group.updated"])
def _group_updated(e, s, out):
    patch = _props(name=e.name, path=e.path)
    if patch:
        out.append((MERGE, _GROUP + s + pack_int(e.group_id), patch))


@_on(T["group.deleted"])
def _group_deleted(e, s, out):
    out.append((DELETE, _GROUP + s + pack_int(e.group_id)))


def _project(e, s, out, **extra):
    p = _PROJECT + s + pack_int(e.project_id)
    out.append((CREATE, p, _props(name=e.name, path=e.path, group_id=e.group_id, archived=False,
                                  created_at=e.occurred_at, **extra)))
    if e.group_id is not None:
        out.append((ATTACH, p, IN_GROUP, _GROUP + s + pack_int(e.group_id)))
    return p


@_on(T["project.created"])
def _project_created(e, s, out):
    _project(e, s, out, default_branch=e.default_branch, visibility=e.visibility)


@_on(T["project.forked"])
def _project_forked(e, s, out):
    p = _project(e, s, out, forked_from_id=e.forked_from_id)
    out.append((LINK, p, FORKED_FROM, _PROJECT + s + pack_int(e.forked_from_id), None))


@_on(T["project.renamed"])
def _project_renamed(e, s, out):
    out.append((MERGE, _PROJECT + s + pack_int(e.project_id), {"name": e.name, "path": e.path}))


@_on(T["project.transferred"])
def _project_transferred(e, s, out):
    p = _PROJECT + s + pack_int(e.project_id)
    out.append((MERGE, p, {"group_id": e.group_id, "path": e.path}))
    out.append((CLEAR, p, IN_GROUP))
    if e.group_id is not None:
        out.append((LINK, p, IN_GROUP, _GROUP + s + pack_int(e.group_id), None))


@_on(T["project.archived"], T["project.unarchived"])
def _project_archived(e, s, out):
    archived = e.__struct_config__.tag == "project.archived"
    out.append((MERGE, _PROJECT + s + pack_int(e.project_id), {"archived": archived}))


@_on(T["project.deleted"])
def _project_deleted(e, s, out):
    out.append((DELETE, _PROJECT + s + pack_int(e.project_id)))


@_on(T["user.created"])
def _user_created(e, s, out):
    out.append((CREATE, _USER + s + pack_int(e.user_id), _props(username=e.username, name=e.name)))


@_on(T["user.updated"])
def _user_updated(e, s, out):
    patch = _props(username=e.username, name=e.name)
    if patch:
        out.append((MERGE, _USER + s + pack_int(e.user_id), patch))


@_on(T["user.deleted"])
def _user_deleted(e, s, out):
    out.append((DELETE, _USER + s + pack_int(e.user_id)))


def _membership(e, s) -> bytes:
    if e.project_id is not None:
        return _PROJECT + s + pack_int(e.project_id)
    if e.group_id is not None:
        return _GROUP + s + pack_int(e.group_id)
    raise InvalidEvent("schema", f"{e.__struct_config__.tag} names neither project_id nor group_id")


@_on(T["member.added"], T["member.updated"])
def _member_added(e, s, out):
    target = _membership(e, s)
    props = {"role": e.role} if e.role is not None else None
    out.append((LINK, _USER + s + pack_int(e.user_id), MEMBER_OF, target, props))


@_on(T["member.removed"])
def _member_removed(e, s, out):
    out.append((UNLINK, _USER + s + pack_int(e.user_id), MEMBER_OF, _membership(e, s)))


# --- labels and milestones -----------------------------------------------


@_on(T["label.created"])
def _label_created(e, s, out):
    lk = _LABEL + s + pack_int(e.label_id)
    out.append((CREATE, lk, _props(name=e.name, color=e.color, project_id=e.project_id,
                                   group_id=e.group_id)))
    if e.project_id is not None:
        out.append((ATTACH, lk, IN_PROJECT, _PROJECT + s + pack_int(e.project_id)))
    elif e.group_id is not None:
        out.append((ATTACH, lk, IN_GROUP, _GROUP + s + pack_int(e.group_id)))


@_on(T["label.updated"])
def _label_updated(e, s, out):
    patch = _props(name=e.name, color=e.color)
    if patch:
        out.append((MERGE, _LABEL + s + pack_int(e.label_id), patch))


@_on(T["label.deleted"])
def _label_deleted(e, s, out):
    out.append((DELETE, _LABEL + s + pack_int(e.label_id)))


@_on(T["milestone.created"])
def _milestone_created(e, s, out):
    mk = _MILESTONE + s + pack_int(e.milestone_id)
    out.append((CREATE, mk, _props(title=e.title, state=e.state, due_date=e.due_date,
                                   project_id=e.project_id)))
    if e.project_id is not None:
        out.append((ATTACH, mk, IN_PROJECT, _PROJECT + s + pack_int(e.project_id)))


@_on(T["milestone.updated"])
def _milestone_updated(e, s, out):
    patch = _props(title=e.title, state=e.state, due_date=e.due_date)
    if patch:
        out.append((MERGE, _MILESTONE + s + pack_int(e.milestone_id), patch))


@_on(T["milestone.deleted"])
def _milestone_deleted(e, s, out):
    out.append((DELETE, _MILESTONE + s + pack_int(e.milestone_id)))


# --- issues and merge requests -------------------------------------------


def _issuable_links(e, s, out, k, *, reviewers=()):
    for label_id in e.label_ids:
        out.append((LINK, k, HAS_LABEL, _LABEL + s + pack_int(label_id), None))
    for user_id in e.assignee_ids:
        out.append((LINK, k, ASSIGNED_TO, _USER + s + pack_int(user_id), None))
    for user_id in reviewers:
        out.append((LINK, k, REVIEWER, _USER + s + pack_int(user_id), None))
    if e.milestone_id is not None:
        out.append((ATTACH, k, IN_MILESTONE, _MILESTONE + s + pack_int(e.milestone_id)))


@_on(T["issue.opened"])
def _issue_opened(e, s, out):
    k = _ISSUE + s + pack_int(e.issue_id)
    out.append((CREATE, k, {"project_id": e.project_id, "iid": e.iid, "title": e.title[:_TITLE_MAX],
                            "state": "opened", "confidential": e.confidential,
                            "author_id": e.author_id, "created_at": e.occurred_at}))
    out.append((ATTACH, k, IN_PROJECT, _PROJECT + s + pack_int(e.project_id)))
    out.append((LINK, _USER + s + pack_int(e.author_id), AUTHORED, k, None))
    _issuable_links(e, s, out, k)
    _refs(out, k, e.description, e, s, e.project_id, m.MENTION)


@_on(T["issue.edited"])
def _issue_edited(e, s, out):
    k = _ISSUE + s + pack_int(e.issue_id)
    patch = {"updated_at": e.occurred_at}
    if e.title is not None:
        patch["title"] = e.title[:_TITLE_MAX]
    out.append((MERGE, k, patch))
    if e.description is not None:
        out.append((CLEAR, k, MENTIONS))
        _refs(out, k, e.description, e, s, e.project_id, m.MENTION)


def _edge_event(edge: int, target: bytes, field: str, add: bool, node: bytes, id_field: str):
    def handler(e, s, out):
        k = node + s + pack_int(getattr(e, id_field))
        other = target + s + pack_int(getattr(e, field))
        out.append((LINK, k, edge, other, None) if add else (UNLINK, k, edge, other))

    return handler


for _node, _prefix, _id in ((_ISSUE, "issue", "issue_id"), (_MR, "merge_request", "merge_request_id")):
    _on(T[f"{_prefix}.labeled"])(_edge_event(HAS_LABEL, _LABEL, "label_id", True, _node, _id))
    _on(T[f"{_prefix}.unlabeled"])(_edge_event(HAS_LABEL, _LABEL, "label_id", False, _node, _id))
    _on(T[f"{_prefix}.assigned"])(_edge_event(ASSIGNED_TO, _USER, "user_id", True, _node, _id))
    _on(T[f"{_prefix}.unassigned"])(_edge_event(ASSIGNED_TO, _USER, "user_id", False, _node, _id))
_on(T["merge_request.review_requested"])(
    _edge_event(REVIEWER, _USER, "user_id", True, _MR, "merge_request_id"))
_on(T["merge_request.review_request_removed"])(
    _edge_event(REVIEWER, _USER, "user_id", False, _MR, "merge_request_id"))


def _milestoned(node: bytes, id_field: str):
    def handler(e, s, out):
        k = node + s + pack_int(getattr(e, id_field))
        out.append((CLEAR, k, IN_MILESTONE))
        out.append((LINK, k, IN_MILESTONE, _MILESTONE + s + pack_int(e.milestone_id), None))

    return handler


def _demilestoned(node: bytes, id_field: str):
    def handler(e, s, out):
        k = node + s + pack_int(getattr(e, id_field))
        if e.milestone_id is None:
            out.append((CLEAR, k, IN_MILESTONE))
        else:
            out.append((UNLINK, k, IN_MILESTONE, _MILESTONE + s + pack_int(e.milestone_id)))

    return handler


_on(T["issue.milestoned"])(_milestoned(_ISSUE, "issue_id"))
_on(T["merge_request.milestoned"])(_milestoned(_MR, "merge_request_id"))
_on(T["issue.demilestoned"])(_demilestoned(_ISSUE, "issue_id"))
_on(T["merge_request.demilestoned"])(_demilestoned(_MR, "merge_request_id"))


@_on(T["issue.closed"])
def _issue_closed(e, s, out):
    out.append((MERGE, _ISSUE + s + pack_int(e.issue_id),
                {"state": "closed", "closed_at": e.occurred_at, "updated_at": e.occurred_at}))


@_on(T["issue.reopened"])
def _issue_reopened(e, s, out):
    out.append((MERGE, _ISSUE + s + pack_int(e.issue_id),
                {"state": "opened", "closed_at": None, "updated_at": e.occurred_at}))


def _link_edge(e, s) -> tuple[bytes, int, bytes]:
    k = _ISSUE + s + pack_int(e.issue_id)
    target = _ISSUE + s + pack_int(e.target_issue_id)
    if e.link_type == "relates_to":
        return k, RELATES_TO, target
    if e.link_type == "blocks":
        return k, BLOCKS, target
    return target, BLOCKS, k


@_on(T["issue.linked"])
def _issue_linked(e, s, out):
    src, edge, dst = _link_edge(e, s)
    out.append((LINK, src, edge, dst, None))


@_on(T["issue.unlinked"])
def _issue_unlinked(e, s, out):
    src, edge, dst = _link_edge(e, s)
    out.append((UNLINK, src, edge, dst))


@_on(T["issue.transferred"])
def _issue_transferred(e, s, out):
    k = _ISSUE + s + pack_int(e.issue_id)
    patch = {"project_id": e.to_project_id, "updated_at": e.occurred_at}
    if e.iid is not None:
        patch["iid"] = e.iid
    out.append((MERGE, k, patch))
    out.append((CLEAR, k, IN_PROJECT))
    out.append((LINK, k, IN_PROJECT, _PROJECT + s + pack_int(e.to_project_id), None))
    # Labels and milestones belong to the old project; the platforms drop them.
    out.append((CLEAR, k, HAS_LABEL))
    out.append((CLEAR, k, IN_MILESTONE))


@_on(T["issue.deleted"])
def _issue_deleted(e, s, out):
    out.append((DELETE, _ISSUE + s + pack_int(e.issue_id)))


def _branch(out, source: str, project_id: int, name: str) -> bytes:
    r = ref_key(source, project_id, "branch", name)
    out.append((ENSURE, r, {"project_id": project_id, "kind": "branch", "name": name}))
    return r


@_on(T["merge_request.opened"])
def _mr_opened(e, s, out):
    k = _MR + s + pack_int(e.merge_request_id)
    out.append((CREATE, k, {"project_id": e.project_id, "iid": e.iid, "title": e.title[:_TITLE_MAX],
                            "state": "opened", "draft": e.draft, "source_branch": e.source_branch,
                            "target_branch": e.target_branch, "author_id": e.author_id,
                            "created_at": e.occurred_at}))
    out.append((ATTACH, k, IN_PROJECT, _PROJECT + s + pack_int(e.project_id)))
    out.append((LINK, _USER + s + pack_int(e.author_id), AUTHORED, k, None))
    _issuable_links(e, s, out, k, reviewers=e.reviewer_ids)
    source_project = e.source_project_id if e.source_project_id is not None else e.project_id
    out.append((LINK, k, FROM_REF, _branch(out, e.source, source_project, e.source_branch), None))
    out.append((ATTACH, k, INTO_REF, _branch(out, e.source, e.project_id, e.target_branch)))
    _refs(out, k, e.description, e, s, e.project_id, m.CLOSE)


@_on(T["merge_request.updated"])
def _mr_updated(e, s, out):
    k = _MR + s + pack_int(e.merge_request_id)
    patch = _props(title=e.title[:_TITLE_MAX] if e.title is not None else None,
                   target_branch=e.target_branch, draft=e.draft, updated_at=e.occurred_at)
    out.append((MERGE, k, patch))
    if e.target_branch is not None:
        out.append((CLEAR, k, INTO_REF))
        out.append((LINK, k, INTO_REF, _branch(out, e.source, e.project_id, e.target_branch), None))
    if e.description is not None:
        out.append((CLEAR, k, CLOSES))
        out.append((CLEAR, k, MENTIONS))
        _refs(out, k, e.description, e, s, e.project_id, m.CLOSE)


@_on(T["merge_request.merged"])
def _mr_merged(e, s, out):
    k = _MR + s + pack_int(e.merge_request_id)
    out.append((MERGE, k, _props(state="merged", merged_at=e.occurred_at, updated_at=e.occurred_at,
                                 merge_commit_sha=e.merge_commit_sha)))
    if e.merge_commit_sha:
        c = commit_ref(e.source, e.merge_commit_sha)
        out.append((ENSURE, c, {"sha": e.merge_commit_sha.lower()}))
        out.append((LINK, k, MERGED_AS, c, None))


@_on(T["merge_request.closed"])
def _mr_closed(e, s, out):
    out.append((MERGE, _MR + s + pack_int(e.merge_request_id),
                {"state": "closed", "closed_at": e.occurred_at, "updated_at": e.occurred_at}))


@_on(T["merge_request.reopened"])
def _mr_reopened(e, s, out):
    out.append((MERGE, _MR + s + pack_int(e.merge_request_id),
                {"state": "opened", "closed_at": None, "updated_at": e.occurred_at}))


# --- comments, pushes, refs ------------------------------------------------

_TARGETS = {"issue": _ISSUE, "merge_request": _MR}


@_on(T["comment.created"])
def _comment_created(e, s, out):
    k = _COMMENT + s + pack_int(e.comment_id)
    out.append((CREATE, k, {"project_id": e.project_id, "target_type": e.target_type,
                            "author_id": e.author_id, "created_at": e.occurred_at}))
    out.append((LINK, _USER + s + pack_int(e.author_id), AUTHORED, k, None))
    code = _TARGETS.get(e.target_type)
    if code is not None and e.target_id is not None:
        out.append((LINK, k, COMMENTED_ON, code + s + pack_int(e.target_id), None))
    elif e.target_type == "commit" and e.target_sha:
        out.append((LINK, k, COMMENTED_ON, commit_ref(e.source, e.target_sha), None))
    _refs(out, k, e.body, e, s, e.project_id, m.MENTION)


@_on(T["comment.edited"])
def _comment_edited(e, s, out):
    k = _COMMENT + s + pack_int(e.comment_id)
    out.append((MERGE, k, {"updated_at": e.occurred_at}))
    out.append((CLEAR, k, MENTIONS))
    _refs(out, k, e.body, e, s, e.project_id, m.MENTION)


@_on(T["comment.deleted"])
def _comment_deleted(e, s, out):
    out.append((DELETE, _COMMENT + s + pack_int(e.comment_id)))


@_on(T["commits.pushed"])
def _commits_pushed(e, s, out):
    split = split_ref(e.ref)
    kind, name = split if split is not None else ("branch", e.ref)
    r = ref_key(e.source, e.project_id, kind, name)
    if is_zero_sha(e.after):
        out.append((DELETE, r))
        return
    p = _PROJECT + s + pack_int(e.project_id)
    out.append((SET, r, {"project_id": e.project_id, "kind": kind, "name": name, "head": e.after}))
    out.append((LINK, r, IN_PROJECT, p, None))
    if e.actor is not None:
        out.append((LINK, _USER + s + pack_int(e.actor.id), PUSHED, r, None))
    mode = m.CLOSE_ON_DEFAULT if kind == "branch" else m.MENTION
    source = e.source
    for c in e.commits:
        ck = commit_ref(source, c.sha)
        props = {"sha": c.sha.lower(), "title": c.message.partition("\n")[0][:_TITLE_MAX]}
        if c.author_name is not None:
            props["author_name"] = c.author_name
        if c.author_email is not None:
            props["author_email"] = c.author_email
        if c.timestamp is not None:
            props["authored_at"] = c.timestamp
        out.append((CREATE, ck, props))
        out.append((LINK, ck, IN_PROJECT, p, None))
        if c.author_id is not None:
            out.append((LINK, _USER + s + pack_int(c.author_id), AUTHORED, ck, None))
        _refs(out, ck, c.message, e, s, e.project_id, mode, name)


@_on(T["ref.created"])
def _ref_created(e, s, out):
    r = ref_key(e.source, e.project_id, e.ref_type, e.ref)
    out.append((CREATE, r, _props(project_id=e.project_id, kind=e.ref_type, name=e.ref, head=e.sha)))
    out.append((LINK, r, IN_PROJECT, _PROJECT + s + pack_int(e.project_id), None))


@_on(T["ref.deleted"])
def _ref_deleted(e, s, out):
    out.append((DELETE, ref_key(e.source, e.project_id, e.ref_type, e.ref)))


#: Every canonical event type has a handler (checked by the tests).
HANDLED_TYPES = frozenset(cls.__struct_config__.tag for cls in _HANDLERS)
