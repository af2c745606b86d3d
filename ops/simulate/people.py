"""Simulated people and taxonomy events: users, members, labels, milestones.

Each action takes the :class:`World`, mutates it and returns the event it
produced, or None when its precondition does not hold right now; events a
platform would emit right after it are queued with ``World.follow``.
"""

from __future__ import annotations

from bisect import insort
from datetime import datetime, timedelta

from events.types import (
    Actor,
    Event,
    LabelCreated,
    LabelDeleted,
    LabelUpdated,
    MemberAdded,
    MemberRemoved,
    MemberUpdated,
    MilestoneCreated,
    MilestoneDeleted,
    MilestoneUpdated,
    UserCreated,
    UserDeleted,
    UserUpdated,
)

from .entities import Project, User
from .world import World

__all__ = ["PEOPLE_ACTIONS", "add_member", "create_user", "new_label", "new_milestone",
           "random_role"]

_ROLES = ("developer",) * 12 + ("reporter",) * 4 + ("maintainer",) * 3 + ("guest",)


def random_role(w: World) -> str:
    """A member role, developers most often."""
    return _ROLES[int(w.random() * len(_ROLES))]


def create_user(w: World, now: datetime) -> UserCreated:
    """A new account, created by the admin."""
    text = w.text
    first = text.first_names[int(w.random() * len(text.first_names))]
    last = text.last_names[int(w.random() * len(text.last_names))]
    user = User(w.new_id("user"), w.unique_username(f"{first}.{last}"),
                f"{first.title()} {last.title()}", w.heat())
    w.add_user(user)
    w.loners.append(user)
    return UserCreated(event_id=w.eid(), source=w.source, occurred_at=now, actor=w.root.actor,
                       user_id=user.id, username=user.username, name=user.name)


def _coldness(u: User) -> float:
    return -u.heat


def add_member(w: World, p: Project, u: User, role: str, by: User) -> MemberAdded:
    """``by`` adds ``u`` to ``p``; the event is timed just after the current one."""
    insort(p.members, u, key=_coldness)
    p.roles[u.id] = role
    u.joined = True
    return MemberAdded(event_id=w.eid(), source=w.source, occurred_at=w.tick(), actor=by.actor,
                       user_id=u.id, project_id=p.id, role=role)


def new_label(w: World, p: Project, by: User) -> LabelCreated:
    """A label with a name not yet used in ``p``."""
    names = w.text.labels
    used = set(p.label_names.values())
    name = names[int(w.random() * len(names))]
    n = 1
    while name in used:
        n += 1
        name = f"{names[int(w.random() * len(names))]}-{n}"
    lid = w.new_id("label")
    p.labels.append(lid)
    p.label_names[lid] = name
    return LabelCreated(event_id=w.eid(), source=w.source, occurred_at=w.tick(), actor=by.actor,
                        label_id=lid, name=name, project_id=p.id, color="#%06x" % w.bits(24))


def new_milestone(w: World, p: Project, by: User) -> MilestoneCreated:
    """The next release milestone of ``p``, due in a few weeks."""
    n = p.next_milestone
    p.next_milestone = n + 1
    mid = w.new_id("milestone")
    p.milestones.append(mid)
    due = (w.now + timedelta(days=14 + int(w.random() * 60))).date().isoformat()
    return MilestoneCreated(event_id=w.eid(), source=w.source, occurred_at=w.tick(),
                            actor=by.actor, milestone_id=mid, project_id=p.id,
                            title=f"v{n // 10 + 1}.{n % 10}", due_date=due)


def _non_owner(w: World, p: Project) -> User | None:
    members = [u for u in p.members if u is not p.owner]
    return members[int(w.random() * len(members))] if members else None


def user_created(w: World) -> Event:
    event = create_user(w, w.now)
    if w.random() < 0.75:
        p = w.project()
        w.follow(add_member(w, p, w.users[-1], random_role(w), p.owner))
    return event


def user_updated(w: World) -> Event | None:
    u = w.user()
    if u is None:
        return None
    last = w.text.last_names[int(w.random() * len(w.text.last_names))]
    u.name = f"{u.name.split(' ')[0]} {last.title()}"
    username = None
    if w.random() < 0.2:
        username = w.unique_username(f"{u.username.split('.')[0]}.{last}")
        w.usernames.add(username)
        u.username = username
    u.actor = Actor(id=u.id, username=u.username, name=u.name)
    return UserUpdated(event_id=w.eid(), source=w.source, occurred_at=w.now, actor=u.actor,
                       user_id=u.id, username=username, name=u.name)


def user_deleted(w: World) -> Event | None:
    # Only accounts that never joined anything go, so no later event can name them.
    loners = w.loners
    while loners:
        u = loners.pop(int(w.random() * len(loners)))
        if u.alive and not u.joined:
            u.alive = False
            return UserDeleted(event_id=w.eid(), source=w.source, occurred_at=w.now,
                               actor=w.root.actor, user_id=u.id)
    return None


def member_added(w: World) -> Event | None:
    p = w.project()
    u = w.user()
    if u is None or u.id in p.roles:
        return None
    return add_member(w, p, u, random_role(w), p.owner)


def member_updated(w: World) -> Event | None:
    p = w.project()
    u = _non_owner(w, p)
    role = random_role(w)
    if u is None or role == p.roles[u.id]:
        return None
    p.roles[u.id] = role
    return MemberUpdated(event_id=w.eid(), source=w.source, occurred_at=w.now,
                         actor=p.owner.actor, user_id=u.id, project_id=p.id, role=role)


def member_removed(w: World) -> Event | None:
    p = w.project()
    u = _non_owner(w, p) if len(p.members) > 2 else None
    if u is None:
        return None
    p.members.remove(u)
    del p.roles[u.id]
    return MemberRemoved(event_id=w.eid(), source=w.source, occurred_at=w.now,
                         actor=p.owner.actor, user_id=u.id, project_id=p.id)


def label_created(w: World) -> Event:
    p = w.any_project()
    return new_label(w, p, w.member(p))


def label_updated(w: World) -> Event | None:
    p = w.project()
    lid = w.label(p)
    if lid is None:
        return None
    return LabelUpdated(event_id=w.eid(), source=w.source, occurred_at=w.now,
                        actor=w.member(p).actor, label_id=lid, color="#%06x" % w.bits(24))


def label_deleted(w: World) -> Event | None:
    p = w.any_project()
    if len(p.labels) < 4:
        return None
    lid = p.labels.pop(int(w.random() * len(p.labels)))
    del p.label_names[lid]
    w.dead_labels.add(lid)
    return LabelDeleted(event_id=w.eid(), source=w.source, occurred_at=w.now,
                        actor=w.member(p).actor, label_id=lid)


def milestone_created(w: World) -> Event:
    p = w.project()
    return new_milestone(w, p, w.member(p))


def milestone_updated(w: World) -> Event | None:
    p = w.project()
    if len(p.milestones) < 2:
        return None
    mid = p.milestones.pop(0)
    p.closed_milestones.append(mid)
    return MilestoneUpdated(event_id=w.eid(), source=w.source, occurred_at=w.now,
                            actor=w.member(p).actor, milestone_id=mid, state="closed")


def milestone_deleted(w: World) -> Event | None:
    p = w.project()
    if not p.closed_milestones:
        return None
    mid = p.closed_milestones.pop(int(w.random() * len(p.closed_milestones)))
    w.dead_milestones.add(mid)
    return MilestoneDeleted(event_id=w.eid(), source=w.source, occurred_at=w.now,
                            actor=w.member(p).actor, milestone_id=mid)


#: (action, relative weight); the stream's total weight is about 80, so a
#: weight of 0.08 means about one event per thousand.
PEOPLE_ACTIONS = (
    (user_created, 0.24), (user_updated, 0.06), (user_deleted, 0.02),
    (member_added, 0.30), (member_updated, 0.12), (member_removed, 0.10),
    (label_created, 0.12), (label_updated, 0.06), (label_deleted, 0.04),
    (milestone_created, 0.10), (milestone_updated, 0.08), (milestone_deleted, 0.03),
)
