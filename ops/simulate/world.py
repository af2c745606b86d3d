"""The simulated world: entities that exist right now, and how to pick them.

Pickers only ever return live entities, so an event built from them refers to
things created earlier and not deleted. Hot entities are picked by weight
("heat", drawn once per entity from a heavy-tailed distribution) with
``bisect`` over a cumulative list. Project weights are rebuilt when a project
is archived or deleted (rare); a deleted user is simply skipped and redrawn.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect
from collections import deque
from datetime import datetime, timedelta
from itertools import accumulate

from events.types import Event

from .entities import Group, Issue, MergeRequest, Project, User
from .text import text_pools

__all__ = ["DEFAULT_SOURCE", "World"]

#: The source of seed 0's events; other seeds get ``simulate-<seed>`` (see ``seed_source``).
DEFAULT_SOURCE = "simulate"

_ID_BATCH = 256
# Version 4 and RFC 4122 variant bits, repeated for every id of a batch.
_UUID_MASK = sum(
    (((1 << 128) - 1) & ~(0xF000 << 64) & ~(0xC000 << 48)) << (128 * k) for k in range(_ID_BATCH)
)
_UUID_BITS = sum(((0x4000 << 64) | (0x8000 << 48)) << (128 * k) for k in range(_ID_BATCH))
# Where hex digit j of an id lands in its 8-4-4-4-12 form.
_UUID_POS = tuple(j + (j >= 8) + (j >= 12) + (j >= 16) + (j >= 20) for j in range(32))
_MAX_HEAT = 200.0
_FOLLOW_UP = timedelta(milliseconds=350)


def _id_salt(source: str) -> int:
    """What a batch's random bits are XORed with: 0 for :data:`DEFAULT_SOURCE` (its ids are
    what they always were), else 128 bits of the source's hash in every id's place, so one
    seed under two sources gives two sets of event ids."""
    if source == DEFAULT_SOURCE:
        return 0
    one = int.from_bytes(hashlib.blake2b(source.encode(), digest_size=16).digest(), "big")
    return sum(one << (128 * k) for k in range(_ID_BATCH))


def _uuid_batch(bits, salt: int = 0) -> list[str]:
    # Formatting ids one by one dominated generation time; slicing a whole
    # batch into place with strided copies is about five times cheaper.
    n = _ID_BATCH
    raw = ((bits(128 * n) ^ salt) & _UUID_MASK | _UUID_BITS).to_bytes(16 * n, "big").hex().encode()
    out = bytearray(b"-" * (37 * n))
    for j, pos in enumerate(_UUID_POS):
        out[pos::37] = raw[j::32]
    out[36::37] = b"\n" * n
    return out.decode().splitlines()


def _heat(entity: Project) -> float:
    return entity.heat


class World:
    """Mutable simulation state plus the seeded random source and the clock."""

    def __init__(self, seed: int, source: str, start: datetime) -> None:
        self.rng = rng = random.Random(seed)
        self.random = rng.random
        self.bits = rng.getrandbits
        self.source = source
        self.now = start
        self.text = text_pools()
        # Inter-event gaps: mostly seconds, sometimes minutes, like a busy instance.
        self.steps = tuple(
            timedelta(milliseconds=int(rng.expovariate(1 / 6000))) for _ in range(256)
        )
        self.pending: deque[Event] = deque()
        self._ids: list[str] = []
        self._id_salt = _id_salt(source)
        self.next_id = {"group": 1, "user": 1, "project": 1, "label": 1, "milestone": 1,
                        "mr": 1}
        self.next_issue_id = 1
        self.next_comment_id = 1
        self.users: list[User] = []
        self.user_cum: list[float] = []
        self.usernames: set[str] = set()
        self.loners: list[User] = []
        self.groups: list[Group] = []
        self.group_paths: set[str] = set()
        self.projects: list[Project] = []
        self.project_cum: list[float] = []
        self.project_total = 0.0
        self.project_paths: set[tuple[int, str]] = set()  # (group id, path) of live projects
        self.archived: list[Project] = []
        self.active: list[Project] = []  # alive and not archived, the activity targets
        self.dead_labels: set[int] = set()
        self.dead_milestones: set[int] = set()
        self.root = User(self.new_id("user"), "root", "Administrator", 0.0)
        self.add_user(self.root)

    # --- envelope ----------------------------------------------------------

    def eid(self) -> str:
        """A UUID4 event id drawn from the seeded random source."""
        ids = self._ids
        if not ids:
            ids.extend(_uuid_batch(self.bits, self._id_salt))
        return ids.pop()

    def sha(self) -> str:
        """A random 40-hex commit sha."""
        return "%040x" % self.bits(160)

    def follow(self, event: Event) -> None:
        """Queue an event that a real platform would emit right after the current one."""
        self.pending.append(event)

    def tick(self) -> datetime:
        """Advance the clock a little for a follow-up event and return it."""
        self.now += _FOLLOW_UP
        return self.now

    def new_id(self, kind: str) -> int:
        """The next numeric id of an entity kind."""
        n = self.next_id[kind]
        self.next_id[kind] = n + 1
        return n

    def heat(self) -> float:
        """Activity weight of a new user: heavy-tailed, capped."""
        return min(self.rng.paretovariate(1.1), _MAX_HEAT)

    def project_heat(self) -> float:
        """Activity weight of the next project: Zipf by age, with some luck.

        The organisation's first projects are its core products; later ones
        form the long tail, though a lucky newcomer can still run hot.
        """
        return (len(self.projects) + 1) ** -1.2 * self.rng.paretovariate(3.0)

    # --- registration ------------------------------------------------------

    def add_user(self, user: User) -> None:
        """Make a user pickable."""
        self.users.append(user)
        self.user_cum.append((self.user_cum[-1] if self.user_cum else 0.0) + user.heat)
        self.usernames.add(user.username)

    def add_project(self, project: Project) -> None:
        """Make a project pickable and count it in its group."""
        self.projects.append(project)
        self.active.append(project)
        self.project_total += project.heat
        self.project_cum.append(self.project_total)
        project.group.projects.add(project.id)

    def set_active(self, project: Project, active: bool) -> None:
        """Archive, unarchive or delete: change whether ``project`` takes part in activity."""
        project.active = active
        # Rare, so rebuilding the weights keeps every pick a single bisect.
        self.active = [p for p in self.projects if p.active]
        self.project_cum = list(accumulate(p.heat for p in self.active))
        self.project_total = self.project_cum[-1]

    # --- pickers -----------------------------------------------------------

    def project(self) -> Project:
        """An active project, hot ones far more often."""
        return self.active[bisect(self.project_cum, self.random() * self.project_total)]

    def any_project(self) -> Project:
        """An active project, uniformly."""
        return self.active[int(self.random() * len(self.active))]

    def cold_project(self) -> Project:
        """An active project, the coldest of three: what gets archived or deleted."""
        return min((self.any_project() for _ in range(3)), key=_heat)

    def other_project(self, p: Project) -> Project | None:
        """An active project other than ``p``, weighted by heat."""
        if len(self.active) < 2:
            return None
        for _ in range(8):
            q = self.project()
            if q is not p:
                return q
        return None

    def user(self) -> User | None:
        """A live user, hot ones more often (root never)."""
        users, cum, r = self.users, self.user_cum, self.random
        total = cum[-1]
        for _ in range(16):
            u = users[bisect(cum, r() * total)]
            if u.alive and u is not self.root:
                return u
        return None

    def group(self) -> Group:
        """A live group, uniformly."""
        groups, r = self.groups, self.random
        while True:
            g = groups[int(r() * len(groups))]
            if g.alive:
                return g

    def member(self, p: Project) -> User:
        """A member of ``p``, skewed to the hottest (members are kept hottest first)."""
        m = p.members
        x = self.random()
        return m[int(len(m) * x * x)]

    def recent(self, items: list):
        """An item of ``items`` skewed to the most recent ones, or None."""
        n = len(items)
        if not n:
            return None
        x = self.random()
        return items[n - 1 - int(n * x * x * x)]

    def recent_index(self, items: list) -> int:
        """The index of an item picked like :meth:`recent`, or -1 when empty."""
        n = len(items)
        if not n:
            return -1
        x = self.random()
        return n - 1 - int(n * x * x * x)

    def open_issue(self, p: Project) -> Issue | None:
        """A recent open issue of ``p``, if one is found quickly."""
        issues, r = p.issues, self.random
        n = len(issues)
        if not n:
            return None
        for _ in range(4):
            x = r()
            i = issues[n - 1 - int(n * x * x * x)]
            if i.open:
                return i
        return None

    def closed_issue(self, p: Project) -> Issue | None:
        """A closed issue of ``p``, if one is found quickly."""
        issues, r = p.issues, self.random
        for _ in range(4):
            if not issues:
                return None
            i = issues[int(r() * len(issues))]
            if not i.open:
                return i
        return None

    def open_mr(self, p: Project) -> MergeRequest | None:
        """A recent open merge request of ``p``, if one is found quickly."""
        mrs, r = p.mrs, self.random
        n = len(mrs)
        if not n:
            return None
        for _ in range(4):
            x = r()
            m = mrs[n - 1 - int(n * x * x * x)]
            if m.state == "opened":
                return m
        return None

    def label(self, p: Project) -> int | None:
        """One of ``p``'s labels, or None if it has none."""
        labels = p.labels
        return labels[int(self.random() * len(labels))] if labels else None

    def unique_username(self, base: str) -> str:
        """``base``, or ``base`` with a number when taken."""
        name, n = base, 1
        while name in self.usernames:
            n += 1
            name = f"{base}{n}"
        return name
