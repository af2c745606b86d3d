"""Simulated code events: branches, tags and pushes.

A feature branch is created off the default branch (often named after an
open issue) and receives pushes until a merge request merges it. Commits
pushed to the default branch close the issues their messages name, in the
same project (``Closes #12``) or in another one by its current full path
(``fixes group/project#3``), with an explicit ``issue.closed`` right after.
"""

from __future__ import annotations

from events.types import Commit, CommitsPushed, Event, IssueClosed, RefCreated, RefDeleted

from .entities import Issue, Project, User
from .world import World

__all__ = ["CODE_ACTIONS", "close_issue", "create_branch", "delete_branch"]

_N_COMMITS = (1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 5)
_CLOSE_WORDS = ("Closes", "Fixes", "Resolves", "closes", "fixes", "Closes", "Fixes", "resolves")
_BRANCH_KINDS = ("feature", "fix", "chore", "feature")
_SLUG = str.maketrans({c: " " for c in "\"'()+.,:;/"})


def _slug(title: str) -> str:
    return "-".join(title.lower().translate(_SLUG).split()[:5])


def close_issue(w: World, i: Issue, by: User) -> None:
    """Close ``i`` as the follow-up of a push or merge that named it."""
    i.open = False
    w.follow(IssueClosed(event_id=w.eid(), source=w.source, occurred_at=w.tick(),
                         actor=by.actor, issue_id=i.id, project_id=i.project.id))


def push(w: World) -> Event:
    p = w.project()
    u = w.member(p)
    r, bits, text = w.random, w.bits, w.text
    features = p.features
    branch = w.recent(features) if features and r() < 0.6 else p.default_branch
    if branch not in p.heads:
        branch = p.default_branch
    on_default = branch == p.default_branch
    before = p.heads[branch]
    commits = []
    closes: list[Issue] = []
    now = w.now
    for _ in range(_N_COMMITS[bits(4)]):
        sha = "%040x" % bits(160)
        message = text.commit_messages[bits(11)]
        x = r()
        if x < 0.04:
            q = w.other_project(p)
            i = w.open_issue(q) if q is not None else None
            if i is not None:
                message = f"{message}\n\n{_CLOSE_WORDS[bits(3)]} {i.project.full_path}#{i.iid}"
                if on_default and i not in closes:
                    closes.append(i)
        elif x < 0.14:
            i = w.open_issue(p)
            if i is not None:
                message = f"{message}\n\n{_CLOSE_WORDS[bits(3)]} #{i.iid}"
                if on_default and i not in closes:
                    closes.append(i)
        elif x < 0.22:
            i = w.recent(p.issues)
            if i is not None:
                message = f"{message}\n\nRelated to #{i.iid}"
        commits.append(Commit(sha=sha, message=message, author_name=u.name,
                              author_email=u.email, author_id=u.id, timestamp=now))
    p.heads[branch] = sha
    event = CommitsPushed(event_id=w.eid(), source=w.source, occurred_at=now, actor=u.actor,
                          project_id=p.id, ref=f"refs/heads/{branch}", before=before,
                          after=sha, commits=commits)
    for i in closes:
        close_issue(w, i, u)
    return event


def create_branch(w: World, p: Project, u: User) -> Event | None:
    """A feature branch off the default head, often named after an open issue."""
    i = w.open_issue(p) if w.random() < 0.5 else None
    if i is not None:
        name = f"{i.iid}-{_slug(i.title)}"
    else:
        slugs = w.text.slug_words
        name = f"{_BRANCH_KINDS[w.bits(2)]}/{slugs[int(w.random() * len(slugs))]}-{w.bits(10)}"
    if name in p.heads:
        return None
    sha = p.heads[p.default_branch]
    p.heads[name] = sha
    p.features.append(name)
    if i is not None:
        p.branch_issue[name] = i
    return RefCreated(event_id=w.eid(), source=w.source, occurred_at=w.now, actor=u.actor,
                      project_id=p.id, ref=name, ref_type="branch", sha=sha)


def delete_branch(w: World, p: Project, name: str, u: User, *, follow: bool) -> Event:
    """Delete a feature branch; with ``follow`` the event is queued as a follow-up."""
    del p.heads[name]
    p.branch_issue.pop(name, None)
    # ``features`` keeps deleted names until half of it is stale: removing
    # from the middle of a long list on every merge was the slowest step.
    p.stale_features += 1
    if 2 * p.stale_features > len(p.features):
        p.features = [f for f in p.features if f in p.heads]
        p.stale_features = 0
    event = RefDeleted(event_id=w.eid(), source=w.source,
                       occurred_at=w.tick() if follow else w.now, actor=u.actor,
                       project_id=p.id, ref=name, ref_type="branch")
    if follow:
        w.follow(event)
    return event


def ref_created(w: World) -> Event | None:
    p = w.project()
    return create_branch(w, p, w.member(p))


def tag_created(w: World) -> Event:
    p = w.project()
    n = p.next_tag
    p.next_tag = n + 1
    name = f"v{n // 25 + 1}.{n // 5 % 5}.{n % 5}"
    p.tags.append(name)
    return RefCreated(event_id=w.eid(), source=w.source, occurred_at=w.now,
                      actor=w.member(p).actor, project_id=p.id, ref=name, ref_type="tag",
                      sha=p.heads[p.default_branch])


def ref_deleted(w: World) -> Event | None:
    p = w.project()
    u = w.member(p)
    if p.tags and w.random() < 0.1:
        return RefDeleted(event_id=w.eid(), source=w.source, occurred_at=w.now, actor=u.actor,
                          project_id=p.id, ref=p.tags.pop(), ref_type="tag")
    if not p.features:
        return None
    name = p.features[int(w.random() * len(p.features))]
    if name not in p.heads or name in p.branch_mr:
        return None
    return delete_branch(w, p, name, u, follow=False)


#: (action, relative weight); see ``PEOPLE_ACTIONS`` for the scale
CODE_ACTIONS = ((push, 12.0), (ref_created, 2.0), (tag_created, 0.3), (ref_deleted, 1.5))
