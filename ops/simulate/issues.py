"""Simulated issue events.

Actions follow the contract of :mod:`ops.simulate.people`: mutate the world,
return the event or None when the precondition does not hold right now.
Issues picked for an action are skewed to recent ones, like real trackers.
"""

from __future__ import annotations

from events.types import (
    Event,
    IssueAssigned,
    IssueClosed,
    IssueDeleted,
    IssueDemilestoned,
    IssueEdited,
    IssueLabeled,
    IssueLinked,
    IssueMilestoned,
    IssueOpened,
    IssueReopened,
    IssueTransferred,
    IssueUnassigned,
    IssueUnlabeled,
    IssueUnlinked,
)

from .entities import Issue, Project
from .world import World

__all__ = ["ISSUE_ACTIONS", "mention"]

_REFS = ("See", "Blocks", "Related to", "Follow-up of")
_N_LABELS = (0, 0, 1, 1, 1, 2, 2, 3)
_LINK_TYPES = ("relates_to",) * 5 + ("blocks",) * 2 + ("is_blocked_by",)


def mention(w: World, text: str, issue: Issue | None) -> str:
    """``text`` with a plain reference to ``issue`` appended, if there is one."""
    if issue is None:
        return text
    return f"{text}\n\n{_REFS[w.bits(2)]} #{issue.iid}"


def _recent_with(w: World, p: Project, attribute: str) -> Issue | None:
    for _ in range(4):
        i = w.recent(p.issues)
        if i is None:
            return None
        if getattr(i, attribute):
            return i
    return None


def issue_opened(w: World) -> Event:
    p = w.project()
    u = w.member(p)
    r, text = w.random, w.text
    iid = p.next_iid
    p.next_iid = iid + 1
    issue_id = w.next_issue_id
    w.next_issue_id = issue_id + 1
    issue = Issue(issue_id, iid, p, text.titles[w.bits(12)])
    x = r()
    description = ""
    if x < 0.85:
        description = text.descriptions[w.bits(10)]
        if x < 0.2:
            description = mention(w, description, w.recent(p.issues))
    labels = issue.labels
    for _ in range(_N_LABELS[w.bits(3)]):
        lid = w.label(p)
        if lid is not None and lid not in labels:
            labels.append(lid)
    x = r()
    if x < 0.5:
        issue.assignees.append(w.member(p))
        if x < 0.08:
            other = w.member(p)
            if other is not issue.assignees[0]:
                issue.assignees.append(other)
    if p.milestones and r() < 0.25:
        issue.milestone = p.milestones[int(r() * len(p.milestones))]
    p.issues.append(issue)
    return IssueOpened(
        event_id=w.eid(), source=w.source, occurred_at=w.now, actor=u.actor,
        issue_id=issue.id, project_id=p.id, iid=iid, title=issue.title, author_id=u.id,
        description=description, label_ids=list(labels),
        assignee_ids=[a.id for a in issue.assignees], milestone_id=issue.milestone,
        confidential=r() < 0.03,
    )


def issue_edited(w: World) -> Event | None:
    p = w.project()
    i = w.recent(p.issues)
    if i is None:
        return None
    title = description = None
    if w.random() < 0.4:
        title = i.title = w.text.titles[w.bits(12)]
    else:
        description = mention(w, w.text.descriptions[w.bits(10)],
                               w.recent(p.issues) if w.random() < 0.3 else None)
    return IssueEdited(event_id=w.eid(), source=w.source, occurred_at=w.now,
                       actor=w.member(p).actor, issue_id=i.id, project_id=p.id,
                       title=title, description=description)


def issue_labeled(w: World) -> Event | None:
    p = w.project()
    i = w.open_issue(p)
    lid = w.label(p)
    if i is None or lid is None or lid in i.labels:
        return None
    i.labels.append(lid)
    return IssueLabeled(event_id=w.eid(), source=w.source, occurred_at=w.now,
                        actor=w.member(p).actor, issue_id=i.id, project_id=p.id, label_id=lid)


def issue_unlabeled(w: World) -> Event | None:
    p = w.project()
    i = w.open_issue(p)
    if i is None or not i.labels:
        return None
    lid = i.labels.pop(int(w.random() * len(i.labels)))
    if lid in w.dead_labels:
        return None
    return IssueUnlabeled(event_id=w.eid(), source=w.source, occurred_at=w.now,
                          actor=w.member(p).actor, issue_id=i.id, project_id=p.id, label_id=lid)


def issue_assigned(w: World) -> Event | None:
    p = w.project()
    i = w.open_issue(p)
    u = w.member(p)
    if i is None or u in i.assignees:
        return None
    i.assignees.append(u)
    return IssueAssigned(event_id=w.eid(), source=w.source, occurred_at=w.now,
                         actor=w.member(p).actor, issue_id=i.id, project_id=p.id, user_id=u.id)


def issue_unassigned(w: World) -> Event | None:
    p = w.project()
    i = w.recent(p.issues)
    if i is None or not i.assignees:
        return None
    u = i.assignees.pop(int(w.random() * len(i.assignees)))
    return IssueUnassigned(event_id=w.eid(), source=w.source, occurred_at=w.now,
                           actor=w.member(p).actor, issue_id=i.id, project_id=p.id, user_id=u.id)


def issue_milestoned(w: World) -> Event | None:
    p = w.project()
    i = w.open_issue(p)
    if i is None or not p.milestones:
        return None
    mid = p.milestones[int(w.random() * len(p.milestones))]
    if mid == i.milestone:
        return None
    i.milestone = mid
    return IssueMilestoned(event_id=w.eid(), source=w.source, occurred_at=w.now,
                           actor=w.member(p).actor, issue_id=i.id, project_id=p.id,
                           milestone_id=mid)


def issue_demilestoned(w: World) -> Event | None:
    p = w.project()
    i = _recent_with(w, p, "milestone")
    if i is None:
        return None
    mid, i.milestone = i.milestone, None
    if mid in w.dead_milestones:
        return None
    return IssueDemilestoned(event_id=w.eid(), source=w.source, occurred_at=w.now,
                             actor=w.member(p).actor, issue_id=i.id, project_id=p.id,
                             milestone_id=mid)


def issue_closed(w: World) -> Event | None:
    p = w.project()
    i = w.open_issue(p)
    if i is None:
        return None
    i.open = False
    return IssueClosed(event_id=w.eid(), source=w.source, occurred_at=w.now,
                       actor=w.member(p).actor, issue_id=i.id, project_id=p.id)


def issue_reopened(w: World) -> Event | None:
    p = w.project()
    i = w.closed_issue(p)
    if i is None:
        return None
    i.open = True
    return IssueReopened(event_id=w.eid(), source=w.source, occurred_at=w.now,
                         actor=w.member(p).actor, issue_id=i.id, project_id=p.id)


def issue_linked(w: World) -> Event | None:
    p = w.project()
    i = w.recent(p.issues)
    q = p if w.random() < 0.75 else w.other_project(p)
    target = w.recent(q.issues) if q is not None else None
    if i is None or target is None or target is i or any(t is target for t, _ in i.links):
        return None
    link_type = _LINK_TYPES[w.bits(3)]
    i.links.append((target, link_type))
    return IssueLinked(event_id=w.eid(), source=w.source, occurred_at=w.now,
                       actor=w.member(p).actor, issue_id=i.id, project_id=p.id,
                       target_issue_id=target.id, link_type=link_type)


def issue_unlinked(w: World) -> Event | None:
    p = w.project()
    i = _recent_with(w, p, "links")
    if i is None:
        return None
    target, link_type = i.links.pop(int(w.random() * len(i.links)))
    if not target.alive:
        return None
    return IssueUnlinked(event_id=w.eid(), source=w.source, occurred_at=w.now,
                         actor=w.member(p).actor, issue_id=i.id, project_id=p.id,
                         target_issue_id=target.id, link_type=link_type)


def issue_transferred(w: World) -> Event | None:
    p = w.project()
    k = w.recent_index(p.issues)
    q = w.other_project(p)
    if k < 0 or q is None:
        return None
    i = p.issues.pop(k)
    i.project, i.iid = q, q.next_iid
    q.next_iid += 1
    q.issues.append(i)
    # Labels and milestones belong to the old project; the platform drops them.
    i.labels = []
    i.milestone = None
    return IssueTransferred(event_id=w.eid(), source=w.source, occurred_at=w.now,
                            actor=w.member(p).actor, issue_id=i.id, project_id=p.id,
                            to_project_id=q.id, iid=i.iid)


def issue_deleted(w: World) -> Event | None:
    p = w.project()
    k = w.recent_index(p.issues)
    if k < 0:
        return None
    i = p.issues.pop(k)
    i.alive = False
    return IssueDeleted(event_id=w.eid(), source=w.source, occurred_at=w.now,
                        actor=p.owner.actor, issue_id=i.id, project_id=p.id)


#: (action, relative weight); see ``PEOPLE_ACTIONS`` for the scale
ISSUE_ACTIONS = (
    (issue_opened, 6.0), (issue_edited, 2.5), (issue_labeled, 3.5), (issue_unlabeled, 1.2),
    (issue_assigned, 2.5), (issue_unassigned, 0.8), (issue_milestoned, 1.2),
    (issue_demilestoned, 0.4), (issue_closed, 3.0), (issue_reopened, 0.6),
    (issue_linked, 1.2), (issue_unlinked, 0.3), (issue_transferred, 0.08),
    (issue_deleted, 0.1),
)
