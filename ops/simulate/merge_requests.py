"""Simulated merge request events.

A merge request comes from a feature branch that has none open, often one
named after an issue, and says ``Closes #N``; merging it pushes a merge commit
to the default branch, closes the issues it names that are still open and
usually deletes the branch.
"""

from __future__ import annotations

from events.types import (
    Commit,
    CommitsPushed,
    Event,
    MergeRequestAssigned,
    MergeRequestClosed,
    MergeRequestDemilestoned,
    MergeRequestLabeled,
    MergeRequestMerged,
    MergeRequestMilestoned,
    MergeRequestOpened,
    MergeRequestReopened,
    MergeRequestReviewRequested,
    MergeRequestReviewRequestRemoved,
    MergeRequestUnassigned,
    MergeRequestUnlabeled,
    MergeRequestUpdated,
)

from .code import close_issue, create_branch, delete_branch
from .entities import MergeRequest, Project, User
from .world import World

__all__ = ["MERGE_REQUEST_ACTIONS"]


def mr_opened(w: World) -> Event | None:
    p = w.project()
    u = w.member(p)
    r, text = w.random, w.text
    branch = None
    for _ in range(3):
        b = w.recent(p.features)
        if b is not None and b in p.heads and b not in p.branch_mr:
            branch = b
            break
    if branch is None:
        return create_branch(w, p, u)
    iid = p.next_mr_iid
    p.next_mr_iid = iid + 1
    i = p.branch_issue.get(branch)
    if i is not None and i.alive and i.project is p:
        title = f'Resolve "{i.title}"'
    else:
        i = None
        title = text.titles[w.bits(12)]
    m = MergeRequest(w.new_id("mr"), iid, p, title, branch)
    description = text.descriptions[w.bits(10)] if r() < 0.7 else ""
    if i is None and r() < 0.25:
        i = w.open_issue(p)
    if i is not None and i.open:
        m.closes.append(i)
        description = f"{description}\n\nCloses #{i.iid}".lstrip()
    for _ in range(w.bits(2) >> 1):
        lid = w.label(p)
        if lid is not None and lid not in m.labels:
            m.labels.append(lid)
    if r() < 0.7:
        m.assignees.append(u)
    for _ in range(w.bits(2) >> 1 if len(p.members) > 1 else 0):
        rev = w.member(p)
        if rev is not u and rev not in m.reviewers:
            m.reviewers.append(rev)
    if p.milestones and r() < 0.2:
        m.milestone = p.milestones[int(r() * len(p.milestones))]
    p.mrs.append(m)
    p.branch_mr[branch] = m
    return MergeRequestOpened(
        event_id=w.eid(), source=w.source, occurred_at=w.now, actor=u.actor,
        merge_request_id=m.id, project_id=p.id, iid=iid, title=title, author_id=u.id,
        source_branch=branch, target_branch=m.target, description=description,
        label_ids=list(m.labels), assignee_ids=[a.id for a in m.assignees],
        reviewer_ids=[a.id for a in m.reviewers], milestone_id=m.milestone, draft=r() < 0.15,
    )


def mr_updated(w: World) -> Event | None:
    p = w.project()
    m = w.open_mr(p)
    if m is None:
        return None
    x = w.random()
    title = description = draft = None
    if x < 0.3:
        title = m.title = w.text.titles[w.bits(12)]
    elif x < 0.75:
        description = w.text.descriptions[w.bits(10)]
    else:
        draft = False
    return MergeRequestUpdated(event_id=w.eid(), source=w.source, occurred_at=w.now,
                               actor=w.member(p).actor, merge_request_id=m.id, project_id=p.id,
                               title=title, description=description, draft=draft)


def _mr_and_member(w: World) -> tuple[Project, MergeRequest | None, User]:
    p = w.project()
    return p, w.open_mr(p), w.member(p)


def mr_labeled(w: World) -> Event | None:
    p, m, u = _mr_and_member(w)
    lid = w.label(p)
    if m is None or lid is None or lid in m.labels:
        return None
    m.labels.append(lid)
    return MergeRequestLabeled(event_id=w.eid(), source=w.source, occurred_at=w.now,
                               actor=u.actor, merge_request_id=m.id, project_id=p.id,
                               label_id=lid)


def mr_unlabeled(w: World) -> Event | None:
    p, m, u = _mr_and_member(w)
    if m is None or not m.labels:
        return None
    lid = m.labels.pop(int(w.random() * len(m.labels)))
    if lid in w.dead_labels:
        return None
    return MergeRequestUnlabeled(event_id=w.eid(), source=w.source, occurred_at=w.now,
                                 actor=u.actor, merge_request_id=m.id, project_id=p.id,
                                 label_id=lid)


def _add_user(w: World, kind, field: str) -> Event | None:
    p, m, u = _mr_and_member(w)
    who = w.member(p)
    if m is None or who in getattr(m, field):
        return None
    getattr(m, field).append(who)
    return kind(event_id=w.eid(), source=w.source, occurred_at=w.now, actor=u.actor,
                merge_request_id=m.id, project_id=p.id, user_id=who.id)


def _remove_user(w: World, kind, field: str) -> Event | None:
    p, m, u = _mr_and_member(w)
    users = getattr(m, field) if m is not None else None
    if not users:
        return None
    who = users.pop(int(w.random() * len(users)))
    return kind(event_id=w.eid(), source=w.source, occurred_at=w.now, actor=u.actor,
                merge_request_id=m.id, project_id=p.id, user_id=who.id)


def mr_assigned(w: World) -> Event | None:
    return _add_user(w, MergeRequestAssigned, "assignees")


def mr_unassigned(w: World) -> Event | None:
    return _remove_user(w, MergeRequestUnassigned, "assignees")


def mr_review_requested(w: World) -> Event | None:
    return _add_user(w, MergeRequestReviewRequested, "reviewers")


def mr_review_request_removed(w: World) -> Event | None:
    return _remove_user(w, MergeRequestReviewRequestRemoved, "reviewers")


def mr_milestoned(w: World) -> Event | None:
    p, m, u = _mr_and_member(w)
    if m is None or not p.milestones:
        return None
    mid = p.milestones[int(w.random() * len(p.milestones))]
    if mid == m.milestone:
        return None
    m.milestone = mid
    return MergeRequestMilestoned(event_id=w.eid(), source=w.source, occurred_at=w.now,
                                  actor=u.actor, merge_request_id=m.id, project_id=p.id,
                                  milestone_id=mid)


def mr_demilestoned(w: World) -> Event | None:
    p, m, u = _mr_and_member(w)
    if m is None or m.milestone is None:
        return None
    mid, m.milestone = m.milestone, None
    if mid in w.dead_milestones:
        return None
    return MergeRequestDemilestoned(event_id=w.eid(), source=w.source, occurred_at=w.now,
                                    actor=u.actor, merge_request_id=m.id, project_id=p.id,
                                    milestone_id=mid)


def mr_merged(w: World) -> Event | None:
    p, m, u = _mr_and_member(w)
    if m is None:
        return None
    sha = w.sha()
    m.state = "merged"
    del p.branch_mr[m.branch]
    event = MergeRequestMerged(event_id=w.eid(), source=w.source, occurred_at=w.now,
                               actor=u.actor, merge_request_id=m.id, project_id=p.id,
                               merge_commit_sha=sha)
    closing = [i for i in m.closes if i.alive and i.open and i.project is p]
    message = f"Merge branch '{m.branch}' into '{m.target}'\n\n{m.title}"
    for i in closing:
        message = f"{message}\n\nCloses #{i.iid}"
    before = p.heads[m.target]
    p.heads[m.target] = sha
    w.follow(CommitsPushed(
        event_id=w.eid(), source=w.source, occurred_at=w.tick(), actor=u.actor,
        project_id=p.id, ref=f"refs/heads/{m.target}", before=before, after=sha,
        commits=[Commit(sha=sha, message=message, author_name=u.name, author_email=u.email,
                        author_id=u.id, timestamp=w.now)],
    ))
    for i in closing:
        close_issue(w, i, u)
    if m.branch in p.heads and w.random() < 0.8:
        delete_branch(w, p, m.branch, u, follow=True)
    return event


def mr_closed(w: World) -> Event | None:
    p, m, u = _mr_and_member(w)
    if m is None:
        return None
    m.state = "closed"
    del p.branch_mr[m.branch]
    return MergeRequestClosed(event_id=w.eid(), source=w.source, occurred_at=w.now,
                              actor=u.actor, merge_request_id=m.id, project_id=p.id)


def mr_reopened(w: World) -> Event | None:
    p = w.project()
    mrs = p.mrs
    for _ in range(4):
        m = w.recent(mrs)
        if m is None:
            return None
        if m.state == "closed" and m.branch in p.heads and m.branch not in p.branch_mr:
            m.state = "opened"
            p.branch_mr[m.branch] = m
            return MergeRequestReopened(event_id=w.eid(), source=w.source, occurred_at=w.now,
                                        actor=w.member(p).actor, merge_request_id=m.id,
                                        project_id=p.id)
    return None


#: (action, relative weight); see ``PEOPLE_ACTIONS`` for the scale
MERGE_REQUEST_ACTIONS = (
    (mr_opened, 3.5), (mr_updated, 2.5), (mr_labeled, 1.5), (mr_unlabeled, 0.4),
    (mr_assigned, 1.5), (mr_unassigned, 0.4), (mr_review_requested, 2.5),
    (mr_review_request_removed, 0.4), (mr_milestoned, 0.6), (mr_demilestoned, 0.2),
    (mr_merged, 2.9), (mr_closed, 0.7), (mr_reopened, 0.2),
)
