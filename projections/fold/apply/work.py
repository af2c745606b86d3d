"""Issues and merge requests -> mutations."""

from __future__ import annotations

from projections.fold.apply.registry import (
    ASSIGNED_TO,
    ATTACH,
    AUTHORED,
    BLOCKS,
    CLEAR,
    CLOSES,
    CREATE,
    DELETE,
    ENSURE,
    FROM_REF,
    HAS_LABEL,
    IN_MILESTONE,
    IN_PROJECT,
    INTO_REF,
    ISSUE,
    LABEL,
    LINK,
    MENTIONS,
    MERGE,
    MERGED_AS,
    MILESTONE,
    MR,
    PROJECT,
    RELATES_TO,
    REVIEWER,
    TITLE_MAX,
    TRANSFERRED_TO,
    UNLINK,
    USER,
    T,
    on,
    props,
    refs,
)
from projections.model import mutations as m
from projections.model.keys import commit_ref, pack_int, ref_key

# --- issues and merge requests -------------------------------------------


def _issuable_links(e, s, out, k, *, reviewers=()):
    for label_id in e.label_ids:
        out.append((LINK, k, HAS_LABEL, LABEL + s + pack_int(label_id), None))
    for user_id in e.assignee_ids:
        out.append((LINK, k, ASSIGNED_TO, USER + s + pack_int(user_id), None))
    for user_id in reviewers:
        out.append((LINK, k, REVIEWER, USER + s + pack_int(user_id), None))
    if e.milestone_id is not None:
        out.append((ATTACH, k, IN_MILESTONE, MILESTONE + s + pack_int(e.milestone_id)))


@on(T["issue.opened"])
def _issue_opened(e, s, out):
    k = ISSUE + s + pack_int(e.issue_id)
    out.append((CREATE, k, {"project_id": e.project_id, "iid": e.iid, "title": e.title[:TITLE_MAX],
                            "state": "opened", "confidential": e.confidential,
                            "author_id": e.author_id, "created_at": e.occurred_at}))
    out.append((ATTACH, k, IN_PROJECT, PROJECT + s + pack_int(e.project_id)))
    out.append((LINK, USER + s + pack_int(e.author_id), AUTHORED, k, None))
    _issuable_links(e, s, out, k)
    refs(out, k, e.description, e, s, e.project_id, m.MENTION)


@on(T["issue.edited"])
def _issue_edited(e, s, out):
    k = ISSUE + s + pack_int(e.issue_id)
    patch = {"updated_at": e.occurred_at}
    if e.title is not None:
        patch["title"] = e.title[:TITLE_MAX]
    out.append((MERGE, k, patch))
    if e.description is not None:
        out.append((CLEAR, k, MENTIONS))
        refs(out, k, e.description, e, s, e.project_id, m.MENTION)


def _edge_event(edge: int, target: bytes, field: str, add: bool, node: bytes, id_field: str):
    def handler(e, s, out):
        k = node + s + pack_int(getattr(e, id_field))
        other = target + s + pack_int(getattr(e, field))
        out.append((LINK, k, edge, other, None) if add else (UNLINK, k, edge, other))

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
    def handler(e, s, out):
        k = node + s + pack_int(getattr(e, id_field))
        out.append((CLEAR, k, IN_MILESTONE))
        out.append((LINK, k, IN_MILESTONE, MILESTONE + s + pack_int(e.milestone_id), None))

    return handler


def _demilestoned(node: bytes, id_field: str):
    def handler(e, s, out):
        k = node + s + pack_int(getattr(e, id_field))
        if e.milestone_id is None:
            out.append((CLEAR, k, IN_MILESTONE))
        else:
            out.append((UNLINK, k, IN_MILESTONE, MILESTONE + s + pack_int(e.milestone_id)))

    return handler


on(T["issue.milestoned"])(_milestoned(ISSUE, "issue_id"))
on(T["merge_request.milestoned"])(_milestoned(MR, "merge_request_id"))
on(T["issue.demilestoned"])(_demilestoned(ISSUE, "issue_id"))
on(T["merge_request.demilestoned"])(_demilestoned(MR, "merge_request_id"))


@on(T["issue.closed"])
def _issue_closed(e, s, out):
    out.append((MERGE, ISSUE + s + pack_int(e.issue_id),
                {"state": "closed", "closed_at": e.occurred_at, "updated_at": e.occurred_at}))


@on(T["issue.reopened"])
def _issue_reopened(e, s, out):
    out.append((MERGE, ISSUE + s + pack_int(e.issue_id),
                {"state": "opened", "closed_at": None, "updated_at": e.occurred_at}))


def _link_edge(e, s) -> tuple[bytes, int, bytes]:
    k = ISSUE + s + pack_int(e.issue_id)
    target = ISSUE + s + pack_int(e.target_issue_id)
    if e.link_type == "relates_to":
        return k, RELATES_TO, target
    if e.link_type == "blocks":
        return k, BLOCKS, target
    return target, BLOCKS, k


@on(T["issue.linked"])
def _issue_linked(e, s, out):
    src, edge, dst = _link_edge(e, s)
    out.append((LINK, src, edge, dst, None))


@on(T["issue.unlinked"])
def _issue_unlinked(e, s, out):
    src, edge, dst = _link_edge(e, s)
    out.append((UNLINK, src, edge, dst))


@on(T["issue.transferred"])
def _issue_transferred(e, s, out):
    k = ISSUE + s + pack_int(e.issue_id)
    if e.new_issue_id is not None and e.new_issue_id != e.issue_id:
        # A new issue in the new project; the old one leaves its project, pointing at it.
        new = ISSUE + s + pack_int(e.new_issue_id)
        out.append((CREATE, new, props(project_id=e.to_project_id, iid=e.iid)))
        out.append((ATTACH, new, IN_PROJECT, PROJECT + s + pack_int(e.to_project_id)))
        out.append((MERGE, k, {"state": "transferred", "updated_at": e.occurred_at}))
        out.append((CLEAR, k, IN_PROJECT))
        out.append((LINK, k, TRANSFERRED_TO, new, None))
        return
    patch = {"project_id": e.to_project_id, "updated_at": e.occurred_at}
    if e.iid is not None:
        patch["iid"] = e.iid
    out.append((MERGE, k, patch))
    out.append((CLEAR, k, IN_PROJECT))
    out.append((LINK, k, IN_PROJECT, PROJECT + s + pack_int(e.to_project_id), None))
    # Labels and milestones belong to the old project; the platforms drop them.
    out.append((CLEAR, k, HAS_LABEL))
    out.append((CLEAR, k, IN_MILESTONE))


@on(T["issue.deleted"])
def _issue_deleted(e, s, out):
    out.append((DELETE, ISSUE + s + pack_int(e.issue_id)))


def _branch(out, source: str, project_id: int, name: str) -> bytes:
    r = ref_key(source, project_id, "branch", name)
    out.append((ENSURE, r, {"project_id": project_id, "kind": "branch", "name": name}))
    return r


@on(T["merge_request.opened"])
def _mr_opened(e, s, out):
    k = MR + s + pack_int(e.merge_request_id)
    out.append((CREATE, k, {"project_id": e.project_id, "iid": e.iid, "title": e.title[:TITLE_MAX],
                            "state": "opened", "draft": e.draft, "source_branch": e.source_branch,
                            "target_branch": e.target_branch, "author_id": e.author_id,
                            "created_at": e.occurred_at}))
    out.append((ATTACH, k, IN_PROJECT, PROJECT + s + pack_int(e.project_id)))
    out.append((LINK, USER + s + pack_int(e.author_id), AUTHORED, k, None))
    _issuable_links(e, s, out, k, reviewers=e.reviewer_ids)
    source_project = e.source_project_id if e.source_project_id is not None else e.project_id
    out.append((LINK, k, FROM_REF, _branch(out, e.source, source_project, e.source_branch), None))
    out.append((ATTACH, k, INTO_REF, _branch(out, e.source, e.project_id, e.target_branch)))
    refs(out, k, e.description, e, s, e.project_id, m.CLOSE)


@on(T["merge_request.updated"])
def _mr_updated(e, s, out):
    k = MR + s + pack_int(e.merge_request_id)
    patch = props(title=e.title[:TITLE_MAX] if e.title is not None else None,
                   target_branch=e.target_branch, draft=e.draft, updated_at=e.occurred_at)
    out.append((MERGE, k, patch))
    if e.target_branch is not None:
        out.append((CLEAR, k, INTO_REF))
        out.append((LINK, k, INTO_REF, _branch(out, e.source, e.project_id, e.target_branch), None))
    if e.description is not None:
        out.append((CLEAR, k, CLOSES))
        out.append((CLEAR, k, MENTIONS))
        refs(out, k, e.description, e, s, e.project_id, m.CLOSE)


@on(T["merge_request.merged"])
def _mr_merged(e, s, out):
    k = MR + s + pack_int(e.merge_request_id)
    out.append((MERGE, k, props(state="merged", merged_at=e.occurred_at, updated_at=e.occurred_at,
                                 merge_commit_sha=e.merge_commit_sha)))
    if e.merge_commit_sha:
        c = commit_ref(e.source, e.merge_commit_sha)
        out.append((ENSURE, c, {"sha": e.merge_commit_sha.lower()}))
        out.append((LINK, k, MERGED_AS, c, None))


@on(T["merge_request.closed"])
def _mr_closed(e, s, out):
    out.append((MERGE, MR + s + pack_int(e.merge_request_id),
                {"state": "closed", "closed_at": e.occurred_at, "updated_at": e.occurred_at}))


@on(T["merge_request.reopened"])
def _mr_reopened(e, s, out):
    out.append((MERGE, MR + s + pack_int(e.merge_request_id),
                {"state": "opened", "closed_at": None, "updated_at": e.occurred_at}))
