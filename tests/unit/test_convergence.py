"""Convergence: the same set of events, delivered in any order, gives the same graph.

Webhooks arrive out of order routinely (retries, several in flight). Single-
valued properties and links are last-writer-wins by ``occurred_at`` (then log
position), memberships (labels, assignees, reviewers, members, issue links)
likewise per member, and deletion wins (README "Order"). The same events in
many arrival orders, applied live (the overlay) and as a rebuild (the fold
engine), must give one graph. References in texts are left out: they resolve
against what the graph has when they are applied.
"""

from __future__ import annotations

import tempfile
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events.types import EVENT_TYPES, Actor, Context, ProjectFacts, UserFacts
from projections.fold.engine import fold_log
from projections.fold.memory import MemoryGraph
from projections.read.export import export
from projections.store.graph import GraphStore
from projections.versions.digest import digest
from tests.support.projection import append

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
_ISSUE = {"issue_id": st.integers(1, 2), "project_id": st.just(1)}
# What the issue names: properties, single-valued links, per-member memberships, deletion.
_CHANGES = st.one_of(
    st.fixed_dictionaries({"tag": st.just("issue.opened"), **_ISSUE, "iid": st.just(1),
                           "title": st.sampled_from(["a", "b"]), "author_id": st.just(1),
                           "label_ids": st.lists(st.integers(1, 2), max_size=2, unique=True),
                           "assignee_ids": st.lists(st.integers(1, 2), max_size=1),
                           "milestone_id": st.one_of(st.none(), st.integers(1, 2))}),
    st.fixed_dictionaries({"tag": st.just("issue.edited"), **_ISSUE,
                           "title": st.sampled_from(["c", "d"])}),
    *(st.fixed_dictionaries({"tag": st.just(tag), **_ISSUE})
      for tag in ("issue.closed", "issue.reopened", "issue.deleted")),
    *(st.fixed_dictionaries({"tag": st.just(tag), **_ISSUE, "label_id": st.integers(1, 2)})
      for tag in ("issue.labeled", "issue.unlabeled")),
    *(st.fixed_dictionaries({"tag": st.just(tag), **_ISSUE, "user_id": st.integers(1, 2)})
      for tag in ("issue.assigned", "issue.unassigned")),
    st.fixed_dictionaries({"tag": st.just("issue.milestoned"), **_ISSUE,
                           "milestone_id": st.integers(1, 2)}),
    st.fixed_dictionaries({"tag": st.just("issue.demilestoned"), **_ISSUE,
                           "milestone_id": st.one_of(st.none(), st.integers(1, 2))}),
    st.fixed_dictionaries({"tag": st.just("project.updated"), "project_id": st.just(1),
                           "default_branch": st.sampled_from(["main", "dev"])}),
    st.fixed_dictionaries({"tag": st.just("user.updated"), "user_id": st.integers(1, 2),
                           "name": st.sampled_from(["Ann", "Bob"])}),
    st.fixed_dictionaries({"tag": st.just("issue.transferred"), **_ISSUE,
                           "to_project_id": st.integers(1, 2), "iid": st.integers(1, 3)}),
    st.fixed_dictionaries({"tag": st.just("label.created"), "label_id": st.integers(1, 2),
                           "name": st.sampled_from(["bug", "ux"]), "project_id": st.integers(1, 2)}),
    st.fixed_dictionaries({"tag": st.just("label.deleted"), "label_id": st.integers(1, 2)}),
    *(st.fixed_dictionaries({"tag": st.just(tag), "user_id": st.integers(1, 2), "project_id": st.just(1),
                             "role": st.sampled_from(["developer", "owner"])})
      for tag in ("member.added", "member.updated")),
    st.fixed_dictionaries({"tag": st.just("member.removed"), "user_id": st.integers(1, 2),
                           "project_id": st.just(1)}),
    *(st.fixed_dictionaries({"tag": st.just(tag), **_ISSUE, "target_issue_id": st.integers(1, 2),
                             "link_type": st.sampled_from(["relates_to", "blocks"])})
      for tag in ("issue.linked", "issue.unlinked")),
)
# who did it, as the payload names them (newer names win, beneath the user's own events)
_ACTORS = st.one_of(st.none(), st.builds(lambda i, name: Actor(id=i, username=name),
                                         st.integers(1, 2), st.sampled_from(["ann", "ann2"])))
_CONTEXTS = st.one_of(st.none(), st.builds(
    lambda i, name, branch: Context(users=[UserFacts(id=i, username=name)],
                                    projects=[ProjectFacts(id=1, path="o/r", default_branch=branch)]),
    st.integers(1, 2), st.sampled_from(["ann", "ann3"]), st.sampled_from(["main", "trunk"])))
_SPEC = st.tuples(_CHANGES, _ACTORS, _CONTEXTS)


def _events(specs: list) -> list:
    """One event per spec, each with its own time (ties are broken by log position)."""
    events = []
    for n, (spec, actor, context) in enumerate(specs):
        spec = dict(spec)
        cls = EVENT_TYPES[spec.pop("tag")]
        events.append(cls(event_id=str(uuid.UUID(int=n + 1)), source="github", actor=actor,
                          context=context, occurred_at=T0 + timedelta(minutes=n), **spec))
    return events


def _live(events: list, batch: int) -> dict:
    """The live path: precise overlays of ``batch`` events each."""
    graph = MemoryGraph()
    for i in range(0, len(events), batch):
        graph.apply_events(events[i : i + batch], precise=True)
    dump = export(graph)
    return {"nodes": dump.nodes, "edges": dump.edges}


def _rebuilt(events: list) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        append(root / "log.db", events)
        with GraphStore(root / "graph", create=True) as store:
            fold_log(store, root / "log.db", budget_bytes=1)
            return digest(store).hexdigest


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_SPEC, min_size=2, max_size=10).flatmap(
    lambda specs: st.tuples(st.just(specs), st.lists(st.permutations(range(len(specs))),
                                                     min_size=2, max_size=4))))
def test_any_arrival_order_gives_the_same_graph(case):
    """The same events in several arrival orders: one graph live, one digest rebuilt."""
    specs, orders = case
    events = _events(specs)
    arrivals = [[events[i] for i in order] for order in orders]
    live = [_live(a, batch=1 + n % 3) for n, a in enumerate(arrivals)]
    assert all(g == live[0] for g in live[1:]), "live apply depends on the arrival order"
    rebuilt = [_rebuilt(a) for a in arrivals]
    assert len(set(rebuilt)) == 1, "the rebuild depends on the arrival order"
