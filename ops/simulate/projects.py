"""Simulated groups and projects: the initial organisation and its later changes.

A new project arrives with its owner, a few members, labels, milestones and an
initial push, the way a team sets one up. Archival and deletion pick cold
projects; renames and transfers can hit any, and later references follow the
new path. A project's path is unique within its group.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable

from events.types import (
    Commit,
    CommitsPushed,
    Event,
    GroupCreated,
    GroupDeleted,
    GroupUpdated,
    MemberAdded,
    ProjectArchived,
    ProjectCreated,
    ProjectDeleted,
    ProjectForked,
    ProjectRenamed,
    ProjectTransferred,
    ProjectUnarchived,
    UserCreated,
)

from .entities import Group, Project, User
from .people import add_member, create_user, new_label, new_milestone, random_role
from .world import World

__all__ = ["PROJECT_ACTIONS", "bootstrap"]

_NEW_BRANCH = "0" * 40
_INITIAL_USERS = 30
_INITIAL_GROUPS = 4
_INITIAL_PROJECTS = 8


def bootstrap(w: World) -> None:
    """Queue the initial organisation: the admin, users, groups and projects."""
    root = w.root
    w.follow(UserCreated(event_id=w.eid(), source=w.source, occurred_at=w.now,
                         actor=root.actor, user_id=root.id, username=root.username,
                         name=root.name))
    for _ in range(_INITIAL_USERS):
        w.follow(create_user(w, w.tick()))
    for _ in range(_INITIAL_GROUPS):
        _queue(w, lambda: _create_group(w, root, w.tick()))
    for _ in range(_INITIAL_PROJECTS):
        _queue(w, lambda: _create_project(w, w.tick()))


def _queue(w: World, make: Callable[[], Event]) -> None:
    # Creation helpers queue their follow-ups before returning the event they follow.
    mark = len(w.pending)
    event = make()
    w.pending.insert(mark, event)


def _create_group(w: World, creator: User, now: datetime) -> GroupCreated:
    words = w.text.group_words
    word = words[int(w.random() * len(words))]
    path, n = word, 1
    while path in w.group_paths:
        n += 1
        path = f"{word}-{n}"
    g = Group(w.new_id("group"), path.replace("-", " ").title(), path)
    w.groups.append(g)
    w.group_paths.add(path)
    event = GroupCreated(event_id=w.eid(), source=w.source, occurred_at=now,
                         actor=creator.actor, group_id=g.id, name=g.name, path=g.path)
    creator.joined = True
    w.follow(MemberAdded(event_id=w.eid(), source=w.source, occurred_at=w.tick(),
                         actor=creator.actor, user_id=creator.id, group_id=g.id, role="owner"))
    return event


def _taken(w: World, g: Group, path: str) -> bool:
    return (g.id, path) in w.project_paths


def _claim(w: World, p: Project) -> None:
    w.project_paths.add((p.group.id, p.path))


def _release(w: World, p: Project) -> None:
    w.project_paths.discard((p.group.id, p.path))


def _project_name(w: World, g: Group) -> tuple[str, str]:
    text, r = w.text, w.random
    for _ in range(8):
        word = text.project_words[int(r() * len(text.project_words))]
        suffix = text.project_suffixes[int(r() * len(text.project_suffixes))]
        path = f"{word}-{suffix}"
        if not _taken(w, g, path):
            return f"{word.title()} {suffix.title()}", path
    n = 2
    while _taken(w, g, f"{path}-{n}"):
        n += 1
    return f"{word.title()} {suffix.title()} {n}", f"{path}-{n}"


def _create_project(w: World, now: datetime) -> Event:
    g = w.group()
    creator = w.user() or w.root
    name, path = _project_name(w, g)
    p = Project(w.new_id("project"), name, path, g, w.project_heat(), creator)
    w.add_project(p)
    _claim(w, p)
    event = ProjectCreated(event_id=w.eid(), source=w.source, occurred_at=now,
                           actor=creator.actor, project_id=p.id, name=name, path=path,
                           group_id=g.id, default_branch=p.default_branch,
                           visibility="internal" if w.random() < 0.7 else "private")
    w.follow(add_member(w, p, creator, "owner", creator))
    for _ in range(2 + int(w.random() * 6)):
        u = w.user()
        if u is not None and u.id not in p.roles:
            w.follow(add_member(w, p, u, random_role(w), creator))
    for _ in range(5 + int(w.random() * 5)):
        w.follow(new_label(w, p, creator))
    for _ in range(1 + int(w.random() * 2)):
        w.follow(new_milestone(w, p, creator))
    sha = w.sha()
    p.heads[p.default_branch] = sha
    w.follow(CommitsPushed(
        event_id=w.eid(), source=w.source, occurred_at=w.tick(), actor=creator.actor,
        project_id=p.id, ref=f"refs/heads/{p.default_branch}", before=_NEW_BRANCH, after=sha,
        commits=[Commit(sha=sha, message="Initial commit", author_name=creator.name,
                        author_email=creator.email, author_id=creator.id, timestamp=w.now)],
    ))
    return event


def project_created(w: World) -> Event:
    return _create_project(w, w.now)


def project_renamed(w: World) -> Event:
    p = w.any_project()
    _release(w, p)
    p.name, p.path = _project_name(w, p.group)
    _claim(w, p)
    return ProjectRenamed(event_id=w.eid(), source=w.source, occurred_at=w.now,
                          actor=p.owner.actor, project_id=p.id, name=p.name, path=p.path)


def project_transferred(w: World) -> Event | None:
    p = w.any_project()
    g = w.group()
    if g is p.group:
        return None
    _release(w, p)
    if _taken(w, g, p.path):
        p.path = f"{p.path}-{p.id}"
    p.group.projects.discard(p.id)
    p.group = g
    g.projects.add(p.id)
    _claim(w, p)
    return ProjectTransferred(event_id=w.eid(), source=w.source, occurred_at=w.now,
                              actor=p.owner.actor, project_id=p.id, group_id=g.id,
                              path=p.path)


def project_archived(w: World) -> Event | None:
    if len(w.active) <= 3:
        return None
    p = w.cold_project()
    w.set_active(p, False)
    w.archived.append(p)
    return ProjectArchived(event_id=w.eid(), source=w.source, occurred_at=w.now,
                           actor=p.owner.actor, project_id=p.id)


def project_unarchived(w: World) -> Event | None:
    if not w.archived:
        return None
    p = w.archived.pop(int(w.random() * len(w.archived)))
    w.set_active(p, True)
    return ProjectUnarchived(event_id=w.eid(), source=w.source, occurred_at=w.now,
                             actor=p.owner.actor, project_id=p.id)


def project_deleted(w: World) -> Event | None:
    if w.archived and w.random() < 0.5:
        p = w.archived.pop(int(w.random() * len(w.archived)))
    elif len(w.active) > 3:
        p = w.cold_project()
        w.set_active(p, False)
    else:
        return None
    p.alive = False
    p.group.projects.discard(p.id)
    _release(w, p)
    w.dead_labels.update(p.labels)
    w.dead_milestones.update(p.milestones + p.closed_milestones)
    for i in p.issues:
        i.alive = False
    for m in p.mrs:
        m.alive = False
    return ProjectDeleted(event_id=w.eid(), source=w.source, occurred_at=w.now,
                          actor=p.owner.actor, project_id=p.id)


def project_forked(w: World) -> Event | None:
    src = w.project()
    g = w.group()
    creator = w.user()
    if creator is None or g is src.group:
        return None
    name, path = src.name, src.path
    if _taken(w, g, path):
        name, path = f"{name} Fork", f"{path}-fork-{w.next_id['project']}"
    p = Project(w.new_id("project"), name, path, g, w.project_heat() * 0.3, creator)
    p.heads[p.default_branch] = src.heads[src.default_branch]
    w.add_project(p)
    _claim(w, p)
    event = ProjectForked(event_id=w.eid(), source=w.source, occurred_at=w.now,
                          actor=creator.actor, project_id=p.id, forked_from_id=src.id,
                          name=name, path=path, group_id=g.id)
    w.follow(add_member(w, p, creator, "owner", creator))
    return event


def group_created(w: World) -> Event:
    return _create_group(w, w.user() or w.root, w.now)


def group_updated(w: World) -> Event | None:
    g = w.group()
    word = w.text.group_words[int(w.random() * len(w.text.group_words))]
    path = f"{word}-{g.id}"
    if path in w.group_paths:
        return None
    w.group_paths.discard(g.path)
    w.group_paths.add(path)
    g.path, g.name = path, f"{word.title()} {g.id}"
    return GroupUpdated(event_id=w.eid(), source=w.source, occurred_at=w.now,
                        actor=w.root.actor, group_id=g.id, name=g.name, path=g.path)


def group_deleted(w: World) -> Event | None:
    live = [g for g in w.groups if g.alive]
    empty = [g for g in live if not g.projects]
    if len(live) < 3 or not empty:
        return None
    g = empty[int(w.random() * len(empty))]
    g.alive = False
    w.group_paths.discard(g.path)
    return GroupDeleted(event_id=w.eid(), source=w.source, occurred_at=w.now,
                        actor=w.root.actor, group_id=g.id)


#: (action, relative weight); see ``PEOPLE_ACTIONS`` for the scale.
PROJECT_ACTIONS = (
    (project_created, 0.065), (project_renamed, 0.025), (project_transferred, 0.025),
    (project_archived, 0.015), (project_unarchived, 0.015), (project_deleted, 0.012),
    (project_forked, 0.015),
    (group_created, 0.008), (group_updated, 0.01), (group_deleted, 0.008),
)
