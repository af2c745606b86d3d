"""Comments, pushes and refs -> mutations."""

from __future__ import annotations

from events.gitrefs import is_zero_sha, split_ref
from projections.fold.apply.registry import (
    AUTHORED,
    CLEAR,
    COMMENT,
    COMMENTED_ON,
    CREATE,
    DELETE,
    IN_PROJECT,
    ISSUE,
    LINK,
    LINK_IID,
    MENTIONS,
    MERGE,
    MR,
    PROJECT,
    PUSHED,
    SET,
    TITLE_MAX,
    USER,
    T,
    on,
    props,
    refs,
)
from projections.model import mutations as m
from projections.model.keys import commit_ref, pack_int, ref_key

# --- comments, pushes, refs ------------------------------------------------

_TARGETS = {"issue": ISSUE, "merge_request": MR}
_IID_KINDS = {"issue": b"i", "merge_request": b"m"}


@on(T["comment.created"])
def _comment_created(e, s, out):
    k = COMMENT + s + pack_int(e.comment_id)
    out.append((CREATE, k, {"project_id": e.project_id, "target_type": e.target_type,
                            "author_id": e.author_id, "created_at": e.occurred_at}))
    out.append((LINK, USER + s + pack_int(e.author_id), AUTHORED, k, None))
    code = _TARGETS.get(e.target_type)
    if code is not None and e.target_id is not None:
        out.append((LINK, k, COMMENTED_ON, code + s + pack_int(e.target_id), None))
    elif code is not None and e.target_iid is not None:
        out.append((LINK_IID, k, COMMENTED_ON, _IID_KINDS[e.target_type], s, e.project_id,
                    e.target_iid))
    elif e.target_type == "commit" and e.target_sha:
        out.append((LINK, k, COMMENTED_ON, commit_ref(e.source, e.target_sha), None))
    refs(out, k, e.body, e, s, e.project_id, m.MENTION)


@on(T["comment.edited"])
def _comment_edited(e, s, out):
    k = COMMENT + s + pack_int(e.comment_id)
    out.append((MERGE, k, {"updated_at": e.occurred_at}))
    out.append((CLEAR, k, MENTIONS))
    refs(out, k, e.body, e, s, e.project_id, m.MENTION)


@on(T["comment.deleted"])
def _comment_deleted(e, s, out):
    out.append((DELETE, COMMENT + s + pack_int(e.comment_id)))


@on(T["commits.pushed"])
def _commits_pushed(e, s, out):
    split = split_ref(e.ref)
    kind, name = split if split is not None else ("branch", e.ref)
    r = ref_key(e.source, e.project_id, kind, name)
    if is_zero_sha(e.after):
        out.append((DELETE, r))
        return
    p = PROJECT + s + pack_int(e.project_id)
    out.append((SET, r, {"project_id": e.project_id, "kind": kind, "name": name, "head": e.after}))
    out.append((LINK, r, IN_PROJECT, p, None))
    if e.actor is not None:
        out.append((LINK, USER + s + pack_int(e.actor.id), PUSHED, r, None))
    mode = m.CLOSE_ON_DEFAULT if kind == "branch" else m.MENTION
    source = e.source
    for c in e.commits:
        ck = commit_ref(source, c.sha)
        props = {"sha": c.sha.lower(), "title": c.message.partition("\n")[0][:TITLE_MAX]}
        if c.author_name is not None:
            props["author_name"] = c.author_name
        if c.author_email is not None:
            props["author_email"] = c.author_email
        if c.timestamp is not None:
            props["authored_at"] = c.timestamp
        out.append((CREATE, ck, props))
        out.append((LINK, ck, IN_PROJECT, p, None))
        if c.author_id is not None:
            out.append((LINK, USER + s + pack_int(c.author_id), AUTHORED, ck, None))
        refs(out, ck, c.message, e, s, e.project_id, mode, name)


@on(T["ref.created"])
def _ref_created(e, s, out):
    r = ref_key(e.source, e.project_id, e.ref_type, e.ref)
    out.append((CREATE, r, props(project_id=e.project_id, kind=e.ref_type, name=e.ref, head=e.sha)))
    out.append((LINK, r, IN_PROJECT, PROJECT + s + pack_int(e.project_id), None))


@on(T["ref.deleted"])
def _ref_deleted(e, s, out):
    out.append((DELETE, ref_key(e.source, e.project_id, e.ref_type, e.ref)))


#: Every canonical event type has a handler (checked by the tests).
