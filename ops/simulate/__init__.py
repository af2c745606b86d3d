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

Each seed is its own organisation on its own instance: its events carry the
source ``simulate`` (seed 0) or ``simulate-<seed>``, and graph ids are
``type:source:number``, so two seeds never name the same node and their
events together build the sum of the two graphs.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import msgspec

from events.envelope import Source
from events.types import Event

from .code import CODE_ACTIONS
from .comments import COMMENT_ACTIONS
from .issues import ISSUE_ACTIONS
from .merge_requests import MERGE_REQUEST_ACTIONS
from .people import PEOPLE_ACTIONS
from .projects import PROJECT_ACTIONS, bootstrap
from .world import DEFAULT_SOURCE, World

__all__ = ["DEFAULT_SOURCE", "DEFAULT_START", "MAX_SEED", "seed_source", "simulate"]

#: Where the simulated clock starts unless told otherwise.
DEFAULT_START = datetime(2026, 1, 1, tzinfo=UTC)

_ACTIONS = (
    ISSUE_ACTIONS + COMMENT_ACTIONS + CODE_ACTIONS + MERGE_REQUEST_ACTIONS + PEOPLE_ACTIONS
    + PROJECT_ACTIONS
)
_TABLE_BITS = 16
#: The largest seed (``simulate-<seed>`` must fit the 32 characters of a source).
MAX_SEED = 10**18 - 1


def seed_source(seed: int) -> str:
    """The source of ``seed``'s events, its id space: ``simulate`` for 0, else ``simulate-<seed>``."""
    _check_seed(seed)
    return DEFAULT_SOURCE if seed == 0 else f"{DEFAULT_SOURCE}-{seed}"


def _check_seed(seed: int) -> None:
    # random.Random(-7) is random.Random(7): a negative seed would be another seed's twin.
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be an integer from 0 to {MAX_SEED}, got {seed!r}")


def simulate(
    n_events: int,
    *,
    seed: int = 0,
    source: str | None = None,
    start: datetime | None = None,
) -> Iterator[Event]:
    """Yield exactly ``n_events`` canonical events of a simulated organisation.

    The same ``seed`` (and ``source``, ``start``) always yields the same
    events, ids included. ``source`` defaults to the seed's own
    (:func:`seed_source`); another source gives other event ids too.
    ``occurred_at`` starts at ``start`` (default :data:`DEFAULT_START`, must be
    timezone-aware) and never decreases.
    """
    if n_events < 0:
        raise ValueError(f"n_events must be >= 0, got {n_events}")
    _check_seed(seed)
    if source is None:
        source = seed_source(seed)
    else:
        try:
            msgspec.convert(source, Source)
        except msgspec.ValidationError as e:
            raise ValueError(f"source {source!r} is not a valid event source: {e}") from None
    start = DEFAULT_START if start is None else start
    if start.tzinfo is None:
        raise ValueError(f"start must be timezone-aware, got naive {start.isoformat()}")
    return _run(n_events, seed, source, start.astimezone(UTC))


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
