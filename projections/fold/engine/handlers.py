"""Direct handlers: one function per event type folds a decoded event into a segment.

Each handler does what :mod:`projections.fold.apply` says the event means,
calling the segment's operations instead of emitting mutation tuples; the
module-level :data:`HANDLERS` maps event classes to them. :func:`fold_event`
adds what every event does first (its actor seeds a user node).
"""

from __future__ import annotations

from collections.abc import Callable

from events.errors import InvalidEvent
from events.gitrefs import is_zero_sha, split_ref
from events.references import parse_references
from events.types import EVENT_TYPES, Context, Event
from projections.fold import stamps
from projections.fold.engine.state import Segment
from projections.fold.slots import MISSING
from projections.model import mutations as m
from projections.model.keys import CODES, commit_ref, pack_int, ref_key, source_prefix
from projections.model.ontology import EDGE_TYPES
from projections.store.writeset import encode_props

__all__ = ["HANDLERS", "fold_event", "handled_types"]

_E = {e.name: e.code for e in EDGE_TYPES}
IN_GROUP, IN_PROJECT = _E["IN_GROUP"], _E["IN_PROJECT"]
AUTHORED, ASSIGNED_TO = _E["AUTHORED"], _E["ASSIGNED_TO"]
REVIEWER, HAS_LABEL, IN_MILESTONE = _E["REVIEWER"], _E["HAS_LABEL"], _E["IN_MILESTONE"]
MENTIONS, CLOSES, RELATES_TO, BLOCKS = _E["MENTIONS"], _E["CLOSES"], _E["RELATES_TO"], _E["BLOCKS"]
MEMBER_OF, COMMENTED_ON = _E["MEMBER_OF"], _E["COMMENTED_ON"]
FORKED_FROM, PUSHED = _E["FORKED_FROM"], _E["PUSHED"]
FROM_REF, INTO_REF, MERGED_AS = _E["FROM_REF"], _E["INTO_REF"], _E["MERGED_AS"]
TRANSFERRED_TO = _E["TRANSFERRED_TO"]

GROUP, PROJECT, USER = CODES["Group"], CODES["Project"], CODES["User"]
ISSUE, MR, LABEL = CODES["Issue"], CODES["MergeRequest"], CODES["Label"]
MILESTONE, COMMENT = CODES["Milestone"], CODES["Comment"]
TITLE_MAX = 200
T = EVENT_TYPES

Handler = Callable[[Segment, Event, bytes], None]
HANDLERS: dict[type, Handler] = {}


def fold_event(g: Segment, event: Event) -> None:
    """Fold one event into ``g`` (``g.position`` is the event's log position)."""
    s = source_prefix(event.source)
    # what the actor's names and the context say stays beneath what the event itself says
    g.at = context_at = stamps.at(event.occurred_at, own=False)
    actor = event.actor
    if actor is not None and actor.username is not None:
        props = {"username": actor.username}
        if actor.name is not None:
            props["name"] = actor.name
        g.ensure(USER + s + pack_int(actor.id), props)
    if event.context is not None:
        _context(g, event.context, s)
    g.at = context_at + stamps.OWN
    HANDLERS[type(event)](g, event, s)


def _context(g: Segment, ctx: Context, s: bytes) -> None:
    """A webhook's context facts (see :func:`projections.fold.apply.registry.context`)."""
    for gr in ctx.groups:
        k = GROUP + s + pack_int(gr.id)
        g.create(k, _props(name=gr.name, path=gr.path, parent_id=gr.parent_id))
        if gr.parent_id is not None:
            g.attach(k, IN_GROUP, GROUP + s + pack_int(gr.parent_id))
    for p in ctx.projects:
        k = PROJECT + s + pack_int(p.id)
        g.create(k, _props(name=p.name, path=p.path, group_id=p.group_id,
                           default_branch=p.default_branch, visibility=p.visibility))
        if p.group_id is not None:
            g.attach(k, IN_GROUP, GROUP + s + pack_int(p.group_id))
    for u in ctx.users:
        g.create(USER + s + pack_int(u.id), _props(username=u.username, name=u.name))
    for ms in ctx.milestones:
        k = MILESTONE + s + pack_int(ms.id)
        g.create(k, _props(title=ms.title, state=ms.state, due_date=ms.due_date,
                           project_id=ms.project_id))
        if ms.project_id is not None:
            g.attach(k, IN_PROJECT, PROJECT + s + pack_int(ms.project_id))
    for code, items in ((ISSUE, ctx.issues), (MR, ctx.merge_requests)):
        for i in items:
            k = code + s + pack_int(i.id)
            title = i.title[:TITLE_MAX] if i.title is not None else None
            extra = ({"source_branch": i.source_branch, "target_branch": i.target_branch}
                     if code == MR else {})
            g.create(k, _props(project_id=i.project_id, iid=i.iid, title=title, state=i.state,
                               **extra))
            g.attach(k, IN_PROJECT, PROJECT + s + pack_int(i.project_id))


def handled_types() -> frozenset[str]:
    """The tags of the event types a handler is registered for."""
    return frozenset(cls.__struct_config__.tag for cls in HANDLERS)


def on(*types: type) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        for t in types:
            HANDLERS[t] = fn
        return fn

    return register


def _props(**values: object) -> dict:
    return {k: v for k, v in values.items() if v is not None}


def _refs(g: Segment, src: bytes, text: str | None, event: Event, s: bytes, project_id: int,
          mode: int, branch: str | None = None) -> None:
    if not text or ("#" not in text and "/issues/" not in text and "/work_items/" not in text):
        return
    platform = "github" if event.source == "github" else None
    for ref in parse_references(text, platform=platform):  # type: ignore[arg-type]
        kind = mode if ref.kind == "closes" else m.MENTION
        g.ref(src, kind, s, project_id, ref.number, ref.project_path, branch)


# --- groups, projects, users, members ------------------------------------


@on(T["group.created"])
def _group_created(g, e, s):
    k = GROUP + s + pack_int(e.group_id)
    g.create(k, _props(name=e.name, path=e.path, parent_id=e.parent_id))
    if e.parent_id is not None:
        g.attach(k, IN_GROUP, GROUP + s + pack_int(e.parent_id))


@on(T["group.updated"])
def _group_updated(g, e, s):
    patch = _props(name=e.name, path=e.path)
    if patch:
        g.merge(GROUP + s + pack_int(e.group_id), patch)


@on(T["group.deleted"])
def _group_deleted(g, e, s):
    g.delete(GROUP + s + pack_int(e.group_id))


def _project(g, e, s, **extra):
    p = PROJECT + s + pack_int(e.project_id)
    g.create(p, _props(name=e.name, path=e.path, group_id=e.group_id, archived=False,
                       created_at=e.occurred_at, **extra))
    if e.group_id is not None:
        g.attach(p, IN_GROUP, GROUP + s + pack_int(e.group_id))
    return p


@on(T["project.created"])
def _project_created(g, e, s):
    _project(g, e, s, default_branch=e.default_branch, visibility=e.visibility)


@on(T["project.forked"])
def _project_forked(g, e, s):
    p = _project(g, e, s, forked_from_id=e.forked_from_id)
    g.link(p, FORKED_FROM, PROJECT + s + pack_int(e.forked_from_id))


@on(T["project.renamed"])
def _project_renamed(g, e, s):
    g.merge(PROJECT + s + pack_int(e.project_id), {"name": e.name, "path": e.path})


@on(T["project.transferred"])
def _project_transferred(g, e, s):
    p = PROJECT + s + pack_int(e.project_id)
    g.merge(p, {"group_id": e.group_id, "path": e.path})
    g.clear(p, IN_GROUP)
    if e.group_id is not None:
        g.link(p, IN_GROUP, GROUP + s + pack_int(e.group_id))
    elif "/" in e.path:
        g.join_group(p, s, e.path.rpartition("/")[0])


@on(T["project.updated"])
def _project_updated(g, e, s):
    patch = _props(name=e.name, path=e.path, default_branch=e.default_branch,
                   visibility=e.visibility)
    if patch:
        g.merge(PROJECT + s + pack_int(e.project_id), patch)


@on(T["project.archived"], T["project.unarchived"])
def _project_archived(g, e, s):
    archived = e.__struct_config__.tag == "project.archived"
    g.merge(PROJECT + s + pack_int(e.project_id), {"archived": archived})


@on(T["project.deleted"])
def _project_deleted(g, e, s):
    g.delete(PROJECT + s + pack_int(e.project_id))


@on(T["user.created"])
def _user_created(g, e, s):
    g.create(USER + s + pack_int(e.user_id), _props(username=e.username, name=e.name))


@on(T["user.updated"])
def _user_updated(g, e, s):
    patch = _props(username=e.username, name=e.name)
    if patch:
        g.merge(USER + s + pack_int(e.user_id), patch)


@on(T["user.deleted"])
def _user_deleted(g, e, s):
    g.delete(USER + s + pack_int(e.user_id))


def _membership(e, s) -> bytes:
    if e.project_id is not None:
        return PROJECT + s + pack_int(e.project_id)
    if e.group_id is not None:
        return GROUP + s + pack_int(e.group_id)
    raise InvalidEvent("schema", f"{e.__struct_config__.tag} names neither project_id nor group_id")


@on(T["member.added"], T["member.updated"])
def _member_added(g, e, s):
    target = _membership(e, s)
    g.link(USER + s + pack_int(e.user_id), MEMBER_OF, target,
           {"role": e.role} if e.role is not None else None)


@on(T["member.removed"])
def _member_removed(g, e, s):
    target = _membership(e, s)
    g.unlink(USER + s + pack_int(e.user_id), MEMBER_OF, target)


# --- labels and milestones -----------------------------------------------


@on(T["label.created"])
def _label_created(g, e, s):
    lk = LABEL + s + pack_int(e.label_id)
    g.create(lk, _props(name=e.name, color=e.color, project_id=e.project_id, group_id=e.group_id))
    if e.project_id is not None:
        g.attach(lk, IN_PROJECT, PROJECT + s + pack_int(e.project_id))
    elif e.group_id is not None:
        g.attach(lk, IN_GROUP, GROUP + s + pack_int(e.group_id))


@on(T["label.updated"])
def _label_updated(g, e, s):
    patch = _props(name=e.name, color=e.color)
    if patch:
        g.merge(LABEL + s + pack_int(e.label_id), patch)


@on(T["label.deleted"])
def _label_deleted(g, e, s):
    g.delete(LABEL + s + pack_int(e.label_id))


@on(T["milestone.created"])
def _milestone_created(g, e, s):
    mk = MILESTONE + s + pack_int(e.milestone_id)
    g.create(mk, _props(title=e.title, state=e.state, due_date=e.due_date, project_id=e.project_id))
    if e.project_id is not None:
        g.attach(mk, IN_PROJECT, PROJECT + s + pack_int(e.project_id))


@on(T["milestone.updated"])
def _milestone_updated(g, e, s):
    patch = _props(title=e.title, state=e.state, due_date=e.due_date)
    if patch:
        g.merge(MILESTONE + s + pack_int(e.milestone_id), patch)


@on(T["milestone.deleted"])
def _milestone_deleted(g, e, s):
    g.delete(MILESTONE + s + pack_int(e.milestone_id))


# --- issues and merge requests -------------------------------------------


def _issuable_links(g, e, s, k, reviewers=()):
    link = g.link
    for label_id in e.label_ids:
        link(k, HAS_LABEL, LABEL + s + pack_int(label_id))
    for user_id in e.assignee_ids:
        link(k, ASSIGNED_TO, USER + s + pack_int(user_id))
    for user_id in reviewers:
        link(k, REVIEWER, USER + s + pack_int(user_id))
    if e.milestone_id is not None:
        g.attach(k, IN_MILESTONE, MILESTONE + s + pack_int(e.milestone_id))


@on(T["issue.opened"])
def _issue_opened(g, e, s):
    k = ISSUE + s + pack_int(e.issue_id)
    g.create(k, {"project_id": e.project_id, "iid": e.iid, "title": e.title[:TITLE_MAX],
                 "state": "opened", "confidential": e.confidential, "author_id": e.author_id,
                 "created_at": e.occurred_at})
    g.attach(k, IN_PROJECT, PROJECT + s + pack_int(e.project_id))
    g.link(USER + s + pack_int(e.author_id), AUTHORED, k)
    _issuable_links(g, e, s, k)
    _refs(g, k, e.description, e, s, e.project_id, m.MENTION)


@on(T["issue.edited"])
def _issue_edited(g, e, s):
    k = ISSUE + s + pack_int(e.issue_id)
    patch = {"updated_at": e.occurred_at}
    if e.title is not None:
        patch["title"] = e.title[:TITLE_MAX]
    g.merge(k, patch)
    if e.description is not None:
        g.clear(k, MENTIONS)
        _refs(g, k, e.description, e, s, e.project_id, m.MENTION)


def _edge_event(edge: int, target: bytes, field: str, add: bool, node: bytes, id_field: str):
    def handler(g, e, s):
        k = node + s + pack_int(getattr(e, id_field))
        other = target + s + pack_int(getattr(e, field))
        if add:
            g.link(k, edge, other)
        else:
            g.unlink(k, edge, other)

    return handler


for _node, _prefix, _id in ((ISSUE, "issue", "issue_id"), (MR, "merge_request", "merge_request_id")):
    on(T[f"{_prefix}.labeled"])(_edge_event(HAS_LABEL, LABEL, "label_id", True, _node, _id))
    on(T[f"{_prefix}.unlabeled"])(_edge_event(HAS_LABEL, LABEL, "label_id", False, _node, _id))
    on(T[f"{_prefix}.assigned"])(_edge_event(ASSIGNED_TO, USER, "user_id", True, _node, _id))
    on(T[f"{_prefix}.unassigned"])(_edge_event(ASSIGNED_TO, USER, "user_id", False, _node, _id))
on(T["merge_request.review_requested"])(
    _edge_event(REVIEWER, USER, "user_id", True, MR, "merge_request_id"))
on(T["merge_request.review_request_removed"])(
    _edge_event(REVIEWER, USER, "user_id", False, MR, "merge_request_id"))


def _milestoned(node: bytes, id_field: str):
    def handler(g, e, s):
        k = node + s + pack_int(getattr(e, id_field))
        g.clear(k, IN_MILESTONE)
        g.link(k, IN_MILESTONE, MILESTONE + s + pack_int(e.milestone_id))

    return handler


def _demilestoned(node: bytes, id_field: str):
    def handler(g, e, s):
        k = node + s + pack_int(getattr(e, id_field))
        if e.milestone_id is None:
            g.clear(k, IN_MILESTONE)
        else:
            g.unlink(k, IN_MILESTONE, MILESTONE + s + pack_int(e.milestone_id))

    return handler


on(T["issue.milestoned"])(_milestoned(ISSUE, "issue_id"))
on(T["merge_request.milestoned"])(_milestoned(MR, "merge_request_id"))
on(T["issue.demilestoned"])(_demilestoned(ISSUE, "issue_id"))
on(T["merge_request.demilestoned"])(_demilestoned(MR, "merge_request_id"))


@on(T["issue.closed"])
def _issue_closed(g, e, s):
    g.merge(ISSUE + s + pack_int(e.issue_id),
            {"state": "closed", "closed_at": e.occurred_at, "updated_at": e.occurred_at})


@on(T["issue.reopened"])
def _issue_reopened(g, e, s):
    g.merge(ISSUE + s + pack_int(e.issue_id),
            {"state": "opened", "closed_at": None, "updated_at": e.occurred_at})


def _link_edge(e, s) -> tuple[bytes, int, bytes]:
    k = ISSUE + s + pack_int(e.issue_id)
    target = ISSUE + s + pack_int(e.target_issue_id)
    if e.link_type == "relates_to":
        return k, RELATES_TO, target
    if e.link_type == "blocks":
        return k, BLOCKS, target
    return target, BLOCKS, k


@on(T["issue.linked"])
def _issue_linked(g, e, s):
    g.link(*_link_edge(e, s))


@on(T["issue.unlinked"])
def _issue_unlinked(g, e, s):
    g.unlink(*_link_edge(e, s))


@on(T["issue.transferred"])
def _issue_transferred(g, e, s):
    k = ISSUE + s + pack_int(e.issue_id)
    if e.new_issue_id is not None and e.new_issue_id != e.issue_id:
        new = ISSUE + s + pack_int(e.new_issue_id)
        g.create(new, _props(project_id=e.to_project_id, iid=e.iid))
        g.attach(new, IN_PROJECT, PROJECT + s + pack_int(e.to_project_id))
        g.merge(k, {"state": "transferred", "updated_at": e.occurred_at})
        g.clear(k, IN_PROJECT)
        g.link(k, TRANSFERRED_TO, new)
        return
    patch = {"project_id": e.to_project_id, "updated_at": e.occurred_at}
    if e.iid is not None:
        patch["iid"] = e.iid
    g.merge(k, patch)
    g.clear(k, IN_PROJECT)
    g.link(k, IN_PROJECT, PROJECT + s + pack_int(e.to_project_id))
    g.clear(k, HAS_LABEL)
    g.clear(k, IN_MILESTONE)


@on(T["issue.deleted"])
def _issue_deleted(g, e, s):
    g.delete(ISSUE + s + pack_int(e.issue_id))


def _branch(g, source: str, project_id: int, name: str) -> bytes:
    r = ref_key(source, project_id, "branch", name)
    g.ensure(r, {"project_id": project_id, "kind": "branch", "name": name})
    return r


@on(T["merge_request.opened"])
def _mr_opened(g, e, s):
    k = MR + s + pack_int(e.merge_request_id)
    g.create(k, {"project_id": e.project_id, "iid": e.iid, "title": e.title[:TITLE_MAX],
                 "state": "opened", "draft": e.draft, "source_branch": e.source_branch,
                 "target_branch": e.target_branch, "author_id": e.author_id,
                 "created_at": e.occurred_at})
    g.attach(k, IN_PROJECT, PROJECT + s + pack_int(e.project_id))
    g.link(USER + s + pack_int(e.author_id), AUTHORED, k)
    _issuable_links(g, e, s, k, e.reviewer_ids)
    source_project = e.source_project_id if e.source_project_id is not None else e.project_id
    g.link(k, FROM_REF, _branch(g, e.source, source_project, e.source_branch))
    into = _branch(g, e.source, e.project_id, e.target_branch)
    g.attach(k, INTO_REF, into)
    _refs(g, k, e.description, e, s, e.project_id, m.CLOSE)


@on(T["merge_request.updated"])
def _mr_updated(g, e, s):
    k = MR + s + pack_int(e.merge_request_id)
    g.merge(k, _props(title=e.title[:TITLE_MAX] if e.title is not None else None,
                      target_branch=e.target_branch, draft=e.draft, updated_at=e.occurred_at))
    if e.target_branch is not None:
        g.clear(k, INTO_REF)
        g.link(k, INTO_REF, _branch(g, e.source, e.project_id, e.target_branch))
    if e.description is not None:
        g.clear(k, CLOSES)
        g.clear(k, MENTIONS)
        _refs(g, k, e.description, e, s, e.project_id, m.CLOSE)


@on(T["merge_request.merged"])
def _mr_merged(g, e, s):
    k = MR + s + pack_int(e.merge_request_id)
    g.merge(k, _props(state="merged", merged_at=e.occurred_at, updated_at=e.occurred_at,
                      merge_commit_sha=e.merge_commit_sha))
    if e.merge_commit_sha:
        c = g.commit(commit_ref(e.source, e.merge_commit_sha))
        g.ensure(c, {"sha": e.merge_commit_sha.lower()})
        g.link(k, MERGED_AS, c)


@on(T["merge_request.closed"])
def _mr_closed(g, e, s):
    g.merge(MR + s + pack_int(e.merge_request_id),
            {"state": "closed", "closed_at": e.occurred_at, "updated_at": e.occurred_at})


@on(T["merge_request.reopened"])
def _mr_reopened(g, e, s):
    g.merge(MR + s + pack_int(e.merge_request_id),
            {"state": "opened", "closed_at": None, "updated_at": e.occurred_at})


# --- comments, pushes, refs ------------------------------------------------

_TARGETS = {"issue": ISSUE, "merge_request": MR}
_IID_KINDS = {"issue": b"i", "merge_request": b"m"}


@on(T["comment.created"])
def _comment_created(g, e, s):
    k = COMMENT + s + pack_int(e.comment_id)
    props = {"project_id": e.project_id, "target_type": e.target_type, "author_id": e.author_id,
             "created_at": e.occurred_at}
    g.create(k, props, encode_props(props))
    g.link(USER + s + pack_int(e.author_id), AUTHORED, k)
    code = _TARGETS.get(e.target_type)
    if code is not None and e.target_id is not None:
        g.link(k, COMMENTED_ON, code + s + pack_int(e.target_id))
    elif code is not None and e.target_iid is not None:
        g.link_iid(k, COMMENTED_ON, _IID_KINDS[e.target_type], s, e.project_id, e.target_iid)
    elif e.target_type == "commit" and e.target_sha:
        g.link(k, COMMENTED_ON, g.commit(commit_ref(e.source, e.target_sha)))
    _refs(g, k, e.body, e, s, e.project_id, m.MENTION)


@on(T["comment.edited"])
def _comment_edited(g, e, s):
    k = COMMENT + s + pack_int(e.comment_id)
    g.merge(k, {"updated_at": e.occurred_at})
    g.clear(k, MENTIONS)
    _refs(g, k, e.body, e, s, e.project_id, m.MENTION)


@on(T["comment.deleted"])
def _comment_deleted(g, e, s):
    g.delete(COMMENT + s + pack_int(e.comment_id))


@on(T["commits.pushed"])
def _commits_pushed(g, e, s):
    split = split_ref(e.ref)
    kind, name = split if split is not None else ("branch", e.ref)
    source = e.source
    r = ref_key(source, e.project_id, kind, name)
    if is_zero_sha(e.after):
        g.delete(r)
        return
    p = PROJECT + s + pack_int(e.project_id)
    g.set(r, {"project_id": e.project_id, "kind": kind, "name": name, "head": e.after})
    link = g.link
    link(r, IN_PROJECT, p)
    if e.actor is not None:
        link(USER + s + pack_int(e.actor.id), PUSHED, r)
    mode = m.CLOSE_ON_DEFAULT if kind == "branch" else m.MENTION
    for c in e.commits:
        ck = g.commit(commit_ref(source, c.sha))
        props = {"sha": c.sha.lower(), "title": c.message.partition("\n")[0][:TITLE_MAX]}
        if c.author_name is not None:
            props["author_name"] = c.author_name
        if c.author_email is not None:
            props["author_email"] = c.author_email
        if c.timestamp is not None:
            props["authored_at"] = c.timestamp
        if g.nodes.get(ck) is MISSING:  # a commit first met here: nothing to put it beneath
            g.nodes[ck] = encode_props(props)
        else:
            g.create(ck, props, encode_props(props))
        link(ck, IN_PROJECT, p)
        if c.author_id is not None:
            link(USER + s + pack_int(c.author_id), AUTHORED, ck)
        _refs(g, ck, c.message, e, s, e.project_id, mode, name)


@on(T["ref.created"])
def _ref_created(g, e, s):
    r = ref_key(e.source, e.project_id, e.ref_type, e.ref)
    g.create(r, _props(project_id=e.project_id, kind=e.ref_type, name=e.ref, head=e.sha))
    g.link(r, IN_PROJECT, PROJECT + s + pack_int(e.project_id))


@on(T["ref.deleted"])
def _ref_deleted(g, e, s):
    g.delete(ref_key(e.source, e.project_id, e.ref_type, e.ref))
