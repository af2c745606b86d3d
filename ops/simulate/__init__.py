"""A deterministic, realistic SDLC workload: canonical events for demos and benchmarks.

:func:`simulate` plays a software organisation forward: an admin creates
users and groups, projects get members, labels, milestones and an initial
push; then a skewed stream of issue, merge request, comment, push, branch and
administrative activity follows, with new users, projects and groups appearing
at a steady rate (about one project per thousand events). Every event refers
only to entities that exist at that point, so a graph built from the stream is
coherent, and a few hot projects and users get most of the activity.

Conventions of the generated events, for consumers:

* ``path`` in project events is the project's own slug; its full path is
  ``<group path>/<project path>``, both as of the latest rename or transfer.
  Cross-project references in commit messages (``fixes group/project#3``) use
  the full path current at the time of the push.
* ``CommitsPushed.ref`` is the full ref (``refs/heads/main``); ``RefCreated``
  and ``RefDeleted`` carry the short name with ``ref_type``. The default
  branch exists from ``project.created`` on and is never deleted.
* Closing a referenced issue is an explicit ``issue.closed`` event right after
  the push or merge that closed it.

The stream depends only on ``seed``: ``simulate(n)`` is a prefix of
``simulate(m)`` for ``n < m``, and event ids are UUID4 strings drawn from the
seeded generator, so republishing a run is idempotent downstream.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone

from events.types import Event

from .code import CODE_ACTIONS
from .comments import COMMENT_ACTIONS
from .issues import ISSUE_ACTIONS
from .merge_requests import MERGE_REQUEST_ACTIONS
from .people import PEOPLE_ACTIONS
from .projects import PROJECT_ACTIONS, bootstrap
from .world import World

__all__ = ["DEFAULT_START", "simulate"]

#: Where the simulated clock starts unless told otherwise.
DEFAULT_START = datetime(2026, 1, 1, tzinfo=timezone.utc)

_ACTIONS = (
    ISSUE_ACTIONS + COMMENT_ACTIONS + CODE_ACTIONS + MERGE_REQUEST_ACTIONS + PEOPLE_ACTIONS
    + PROJECT_ACTIONS
)
_TABLE_BITS = 16


def simulate(
    n_events: int,
    *,
    seed: int = 0,
    source: str = "simulate",
    start: datetime | None = None,
) -> Iterator[Event]:
    """Yield exactly ``n_events`` canonical events of a simulated organisation.

    The same ``seed`` (and ``source``, ``start``) always yields the same
    events, ids included. ``occurred_at`` starts at ``start`` (default
    :data:`DEFAULT_START`, must be timezone-aware) and never decreases.
    """
    if n_events < 0:
        raise ValueError(f"n_events must be >= 0, got {n_events}")
    start = DEFAULT_START if start is None else start
    if start.tzinfo is None:
        raise ValueError(f"start must be timezone-aware, got naive {start.isoformat()}")
    return _run(n_events, seed, source, start.astimezone(timezone.utc))


def _action_table(size: int = 1 << _TABLE_BITS) -> list:
    """Each action repeated in proportion to its weight, every action at least once."""
    total = sum(weight for _, weight in _ACTIONS)
    slots = [max(1, round(weight / total * size)) for _, weight in _ACTIONS]
    commonest = slots.index(max(slots))
    slots[commonest] += size - sum(slots)  # the rounding remainder
    return [action for (action, _), n in zip(_ACTIONS, slots) for _ in range(n)]


def _run(n_events: int, seed: int, source: str, start: datetime) -> Iterator[Event]:
    w = World(seed, source, start)
    bootstrap(w)
    # One draw picks both the action (high bits) and the time step (low 8 bits):
    # a table lookup instead of a weighted bisect keeps the loop cheap.
    table = _action_table()
    pending, bits, steps = w.pending, w.bits, w.steps
    popleft = pending.popleft
    left = n_events
    while left:
        if pending:
            yield popleft()
            left -= 1
            continue
        k = bits(_TABLE_BITS + 8)
        w.now += steps[k & 255]
        event = table[k >> 8](w)
        if event is not None:
            yield event
            left -= 1
