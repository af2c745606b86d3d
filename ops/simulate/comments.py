"""Simulated comment events on issues, merge requests and commits.

A project remembers its latest comments; an edit or deletion picks one of
them whose target still lives in the project (issues move and get deleted).
"""

from __future__ import annotations

from events.types import CommentCreated, CommentDeleted, CommentEdited, Event

from .entities import Project
from .issues import mention
from .world import World

__all__ = ["COMMENT_ACTIONS"]


def comment_on_issue(w: World) -> Event | None:
    p = w.project()
    i = w.recent(p.issues)
    if i is None:
        return None
    u = w.member(p)
    body = w.text.comments[w.bits(11)]
    if w.random() < 0.12:
        body = mention(w, body, w.recent(p.issues))
    cid = w.next_comment_id
    w.next_comment_id = cid + 1
    p.comments.append((cid, u, i))
    return CommentCreated(event_id=w.eid(), source=w.source, occurred_at=w.now, actor=u.actor,
                          comment_id=cid, project_id=p.id, target_type="issue", author_id=u.id,
                          body=body, target_id=i.id)


def comment_on_merge_request(w: World) -> Event | None:
    p = w.project()
    m = w.recent(p.mrs)
    if m is None:
        return None
    u = w.member(p)
    body = w.text.comments[w.bits(11)]
    if w.random() < 0.08:
        body = mention(w, body, w.recent(p.issues))
    cid = w.next_comment_id
    w.next_comment_id = cid + 1
    p.comments.append((cid, u, m))
    return CommentCreated(event_id=w.eid(), source=w.source, occurred_at=w.now, actor=u.actor,
                          comment_id=cid, project_id=p.id, target_type="merge_request",
                          author_id=u.id, body=body, target_id=m.id)


def comment_on_commit(w: World) -> Event:
    p = w.project()
    u = w.member(p)
    cid = w.next_comment_id
    w.next_comment_id = cid + 1
    p.comments.append((cid, u, None))
    return CommentCreated(event_id=w.eid(), source=w.source, occurred_at=w.now, actor=u.actor,
                          comment_id=cid, project_id=p.id, target_type="commit", author_id=u.id,
                          body=w.text.comments[w.bits(11)],
                          target_sha=p.heads[p.default_branch])


def _live_comment(w: World, p: Project) -> tuple | None:
    comments = p.comments
    if not comments:
        return None
    entry = comments[int(w.random() * len(comments))]
    target = entry[2]
    if target is not None and (not target.alive or target.project is not p):
        comments.remove(entry)
        return None
    return entry


def comment_edited(w: World) -> Event | None:
    p = w.project()
    entry = _live_comment(w, p)
    if entry is None:
        return None
    return CommentEdited(event_id=w.eid(), source=w.source, occurred_at=w.now,
                         actor=entry[1].actor, comment_id=entry[0], project_id=p.id,
                         body=w.text.comments[w.bits(11)] + "\n\nEdit: clarified the wording.")


def comment_deleted(w: World) -> Event | None:
    p = w.project()
    entry = _live_comment(w, p)
    if entry is None:
        return None
    p.comments.remove(entry)
    return CommentDeleted(event_id=w.eid(), source=w.source, occurred_at=w.now,
                          actor=entry[1].actor, comment_id=entry[0], project_id=p.id)


#: (action, relative weight); see ``PEOPLE_ACTIONS`` for the scale
COMMENT_ACTIONS = (
    (comment_on_issue, 11.0), (comment_on_merge_request, 9.0), (comment_on_commit, 0.5),
    (comment_edited, 1.5), (comment_deleted, 0.4),
)
