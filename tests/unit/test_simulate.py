"""The simulated SDLC workload: deterministic, exact, valid and coherent."""

from __future__ import annotations

import math
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from events.codec import decode_event, encode_event
from events.references import parse_references
from events.types import (
    CommentCreated,
    CommitsPushed,
    IssueEvent,
    IssueOpened,
    MergeRequestEvent,
    MergeRequestOpened,
    MergeRequestUpdated,
)
from ops.simulate import DEFAULT_START, MAX_SEED, seed_source, simulate

N = 20_000
_PROJECT_CREATED = ("project.created", "project.forked")


@pytest.fixture(scope="module")
def stream():
    """One 20k-event run shared by the read-only tests."""
    return list(simulate(N, seed=42))


def _tag(event) -> str:
    return event.__struct_config__.tag


def test_same_seed_yields_the_same_bytes():
    """Two runs with one seed encode to identical bytes, event ids included."""
    first = [encode_event(e) for e in simulate(3000, seed=7)]
    second = [encode_event(e) for e in simulate(3000, seed=7)]
    assert first == second


def test_different_seeds_differ():
    """Another seed gives other event ids and another stream."""
    a = [encode_event(e) for e in simulate(500, seed=1)]
    b = [encode_event(e) for e in simulate(500, seed=2)]
    assert a != b
    assert not {decode_event(x).event_id for x in a} & {decode_event(x).event_id for x in b}


def test_a_shorter_run_is_a_prefix_of_a_longer_one():
    """The stream depends on the seed only, so n events are the first n of any longer run."""
    short = [encode_event(e) for e in simulate(1500, seed=3)]
    long = [encode_event(e) for e in simulate(4000, seed=3)]
    assert long[:1500] == short


def test_each_seed_has_its_own_source_and_event_ids():
    """Seed 0 publishes as `simulate`, seed 7 as `simulate-7`; one seed under another source
    shares no event id with its default run."""
    assert {e.source for e in simulate(50)} == {seed_source(0)} == {"simulate"}
    assert {e.source for e in simulate(50, seed=7)} == {"simulate-7"}
    default = {e.event_id for e in simulate(600, seed=7)}
    assert not default & {e.event_id for e in simulate(600, seed=7, source="loadtest")}


@pytest.mark.parametrize("seed", [-1, -7, True, 1.5, MAX_SEED + 1])
def test_rejects_seeds_outside_the_id_spaces(seed):
    """A negative seed would replay its positive twin; a seed whose source would not fit, or
    that is not an integer, is refused with the range."""
    with pytest.raises(ValueError, match=f"from 0 to {MAX_SEED}"):
        simulate(1, seed=seed)


def test_rejects_an_invalid_source():
    """An explicit source must be one the codec accepts, or every event would be quarantined."""
    with pytest.raises(ValueError, match="'Load Test' is not a valid event source"):
        simulate(1, source="Load Test")
    assert len(seed_source(MAX_SEED)) <= 32

@pytest.mark.parametrize("n", [0, 1, 2, 17, 300, 2500])
def test_yields_exactly_n_events(n):
    """Exactly the requested number of events comes out, even inside the initial setup."""
    assert sum(1 for _ in simulate(n)) == n


def test_rejects_negative_counts_and_naive_start():
    """Bad arguments fail with a message naming the value."""
    with pytest.raises(ValueError, match="-1"):
        simulate(-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        simulate(1, start=datetime(2026, 1, 1))


def test_every_event_round_trips_through_the_codec(stream):
    """Each event encodes, validates on decode and comes back equal."""
    for event in stream:
        raw = encode_event(event)
        assert decode_event(raw) == event
        assert encode_event(decode_event(raw)) == raw


def test_event_ids_are_unique_uuid4(stream):
    """Event ids are distinct, canonical UUID4 strings like real producers send."""
    ids = [e.event_id for e in stream]
    assert len(set(ids)) == len(ids)
    for event_id in ids[:2000]:
        parsed = uuid.UUID(event_id)
        assert parsed.version == 4 and str(parsed) == event_id


def test_occurred_at_is_utc_and_never_decreases(stream):
    """Time starts at the default start, is UTC and only moves forward, in small steps."""
    times = [e.occurred_at for e in stream]
    assert times[0] == DEFAULT_START
    assert all(t.utcoffset() == timedelta(0) for t in times)
    assert all(a <= b for a, b in zip(times, times[1:]))
    assert times[-1] - times[0] < timedelta(days=30)


def test_start_and_source_are_honoured():
    """A given start (in any zone) and source appear on the events."""
    start = datetime(2030, 5, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    events = list(simulate(50, source="loadtest", start=start))
    assert events[0].occurred_at == start and events[0].occurred_at.utcoffset() == timedelta(0)
    assert {e.source for e in events} == {"loadtest"}


def test_mix_covers_at_least_40_event_types(stream):
    """A 20k run exercises most of the canonical event types."""
    kinds = Counter(_tag(e) for e in stream)
    assert len(kinds) >= 40, sorted(kinds)
    assert kinds["comment.created"] > kinds["issue.opened"] > kinds["issue.deleted"]


def test_event_sizes_are_realistic(stream):
    """Encoded events average a few hundred bytes and never come near 64 KiB."""
    sizes = [len(encode_event(e)) for e in stream]
    assert 300 <= sum(sizes) / len(sizes) <= 900
    assert max(sizes) < 64 * 1024


def test_a_few_hot_projects_get_most_issue_activity(stream):
    """The top 10% of projects receive more than half of all issue events."""
    projects = {e.project_id for e in stream if _tag(e) in _PROJECT_CREATED}
    per_project = Counter(e.project_id for e in stream if isinstance(e, IssueEvent))
    top = sorted(per_project.values(), reverse=True)[: math.ceil(len(projects) / 10)]
    assert sum(top) > 0.5 * sum(per_project.values())


def test_projects_scale_with_the_number_of_events():
    """Roughly one project per thousand events, never fewer than a handful."""
    tags = [_tag(e) for e in simulate(40_000, seed=5)]
    assert sum(t in _PROJECT_CREATED for t in tags[:200]) >= 3
    assert 30 <= sum(t in _PROJECT_CREATED for t in tags) <= 100


def test_every_event_refers_to_live_entities(stream):
    """Replaying the stream, no event names an entity that was never created or is gone."""
    checker = _Checker()
    for position, event in enumerate(stream):
        checker.check(position, event)
    checker.finish()
    assert checker.cross_project_closes > 0


def test_cross_project_references_follow_renames_and_transfers():
    """Closing references to other projects use the full path current at push time."""
    checker = _Checker()
    for position, event in enumerate(simulate(60_000, seed=11)):
        checker.check(position, event)
    checker.finish()
    assert checker.cross_project_closes > 0
    assert checker.moved_path_refs > 0


class _Checker:
    """A minimal model of the world that fails on any dangling reference."""

    def __init__(self) -> None:
        self.users: set[int] = set()
        self.groups: dict[int, str] = {}
        self.projects: dict[int, dict] = {}
        self.labels: dict[int, int] = {}
        self.milestones: dict[int, int] = {}
        self.issues: dict[int, list] = {}  # id -> [project, iid, open]
        self.iids: dict[int, dict[int, int]] = {}
        self.last_iid: Counter[int] = Counter()
        self.mrs: dict[int, int] = {}
        self.mr_iids: dict[int, int] = {}
        self.comments: dict[int, int] = {}
        self.moved: set[int] = set()
        self.expect_closed: dict[int, int] = {}
        self.cross_project_closes = 0
        self.moved_path_refs = 0
        self.position = 0

    def path(self, pid: int) -> str:
        p = self.projects[pid]
        return f"{self.groups[p['group']]}/{p['slug']}"

    def active(self, pid: int) -> dict:
        assert pid in self.projects and not self.projects[pid]["archived"], pid
        return self.projects[pid]

    def refs(self, pid: int, text: str | None, pos: int, *, closing: bool = False) -> None:
        for ref in parse_references(text or ""):
            target = pid
            if ref.project_path is not None:
                by_path = {self.path(q): q for q in self.projects}
                assert ref.project_path in by_path, (pos, ref, "stale or unknown path")
                target = by_path[ref.project_path]
                if target in self.moved:
                    self.moved_path_refs += 1
            issue_id = self.iids[target].get(ref.number)
            assert issue_id is not None, (pos, ref, "no such issue")
            if closing and ref.kind == "closes" and self.issues[issue_id][2]:
                self.expect_closed[issue_id] = pos + 20
                self.cross_project_closes += target != pid

    def issue(self, e) -> list:
        issue = self.issues.get(e.issue_id)
        assert issue is not None and issue[0] == e.project_id, e
        self.active(e.project_id)
        return issue

    def check(self, pos: int, e) -> None:  # noqa: C901 - one branch per event type
        kind = _tag(e)
        self.position = pos
        assert e.actor is not None and e.actor.id in self.users or kind == "user.created", e
        for issue_id, deadline in list(self.expect_closed.items()):
            assert pos <= deadline, (issue_id, "closing reference did not close the issue")
        if kind == "user.created":
            self.users.add(e.user_id)
        elif kind == "user.updated":
            assert e.user_id in self.users
        elif kind == "user.deleted":
            self.users.remove(e.user_id)
        elif kind == "group.created":
            self.groups[e.group_id] = e.path
        elif kind == "group.updated":
            self.groups[e.group_id] = e.path
            self.moved.update(q for q, p in self.projects.items() if p["group"] == e.group_id)
        elif kind == "group.deleted":
            assert all(p["group"] != e.group_id for p in self.projects.values())
            del self.groups[e.group_id]
        elif kind in _PROJECT_CREATED:
            assert e.group_id in self.groups and e.project_id not in self.projects
            if kind == "project.forked":
                self.active(e.forked_from_id)
            self.projects[e.project_id] = {"group": e.group_id, "slug": e.path, "archived": False,
                                           "heads": {"main": None}, "tags": set()}
            self.iids[e.project_id] = {}
            self.mr_iids[e.project_id] = 0
        elif kind == "project.renamed":
            self.active(e.project_id)["slug"] = e.path
            self.moved.add(e.project_id)
        elif kind == "project.transferred":
            assert e.group_id in self.groups
            p = self.active(e.project_id)
            p["group"], p["slug"] = e.group_id, e.path
            self.moved.add(e.project_id)
        elif kind == "project.archived":
            self.active(e.project_id)["archived"] = True
        elif kind == "project.unarchived":
            assert self.projects[e.project_id]["archived"]
            self.projects[e.project_id]["archived"] = False
        elif kind == "project.deleted":
            del self.projects[e.project_id]
            for table in (self.labels, self.milestones, self.mrs, self.comments):
                for key in [k for k, v in table.items() if v == e.project_id]:
                    del table[key]
            for issue_id in self.iids.pop(e.project_id).values():
                del self.issues[issue_id]
        elif kind in ("member.added", "member.updated", "member.removed"):
            assert e.user_id in self.users
            if e.project_id is None:
                assert e.group_id in self.groups, e
            else:
                self.active(e.project_id)
        elif kind == "label.created":
            self.active(e.project_id)
            self.labels[e.label_id] = e.project_id
        elif kind in ("label.updated", "label.deleted"):
            self.active(self.labels[e.label_id])
            if kind == "label.deleted":
                del self.labels[e.label_id]
        elif kind == "milestone.created":
            self.active(e.project_id)
            self.milestones[e.milestone_id] = e.project_id
        elif kind in ("milestone.updated", "milestone.deleted"):
            self.active(self.milestones[e.milestone_id])
            if kind == "milestone.deleted":
                del self.milestones[e.milestone_id]
        elif isinstance(e, IssueOpened):
            self.active(e.project_id)
            assert e.iid == self.last_iid[e.project_id] + 1, e
            self.last_iid[e.project_id] = e.iid
            assert all(self.labels.get(x) == e.project_id for x in e.label_ids), e
            assert all(u in self.users for u in e.assignee_ids)
            assert e.milestone_id is None or self.milestones.get(e.milestone_id) == e.project_id
            self.refs(e.project_id, e.description, pos)
            self.issues[e.issue_id] = [e.project_id, e.iid, True]
            self.iids[e.project_id][e.iid] = e.issue_id
        elif isinstance(e, IssueEvent):
            issue = self.issue(e)
            if kind in ("issue.labeled", "issue.unlabeled"):
                assert self.labels.get(e.label_id) == e.project_id, e
            elif kind in ("issue.assigned", "issue.unassigned"):
                assert e.user_id in self.users
            elif kind == "issue.milestoned":
                assert self.milestones.get(e.milestone_id) == e.project_id, e
            elif kind == "issue.demilestoned":
                assert e.milestone_id in self.milestones, e
            elif kind in ("issue.linked", "issue.unlinked"):
                assert e.target_issue_id in self.issues, e
            elif kind == "issue.edited":
                self.refs(e.project_id, e.description, pos)
            elif kind == "issue.closed":
                issue[2] = False
                self.expect_closed.pop(e.issue_id, None)
            elif kind == "issue.reopened":
                issue[2] = True
            elif kind == "issue.transferred":
                self.active(e.to_project_id)
                assert e.iid == self.last_iid[e.to_project_id] + 1, e
                self.last_iid[e.to_project_id] = e.iid
                del self.iids[e.project_id][issue[1]]
                issue[0], issue[1] = e.to_project_id, e.iid
                self.iids[e.to_project_id][e.iid] = e.issue_id
            elif kind == "issue.deleted":
                del self.iids[e.project_id][issue[1]]
                del self.issues[e.issue_id]
        elif isinstance(e, MergeRequestOpened):
            heads = self.active(e.project_id)["heads"]
            assert e.source_branch in heads and e.target_branch in heads, e
            assert e.iid == self.mr_iids[e.project_id] + 1
            self.mr_iids[e.project_id] = e.iid
            self.mrs[e.merge_request_id] = e.project_id
            self.refs(e.project_id, e.description, pos)
        elif isinstance(e, MergeRequestEvent):
            assert self.mrs.get(e.merge_request_id) == e.project_id, e
            self.active(e.project_id)
            if isinstance(e, MergeRequestUpdated):
                self.refs(e.project_id, e.description, pos)
        elif isinstance(e, CommentCreated):
            self.active(e.project_id)
            if e.target_type == "issue":
                assert self.issues[e.target_id][0] == e.project_id, e
            elif e.target_type == "merge_request":
                assert self.mrs[e.target_id] == e.project_id, e
            self.refs(e.project_id, e.body, pos)
            self.comments[e.comment_id] = e.project_id
        elif kind in ("comment.edited", "comment.deleted"):
            assert self.comments.get(e.comment_id) == e.project_id, e
            self.active(e.project_id)
            if kind == "comment.deleted":
                del self.comments[e.comment_id]
        elif isinstance(e, CommitsPushed):
            heads = self.active(e.project_id)["heads"]
            branch = e.ref.removeprefix("refs/heads/")
            assert branch in heads and heads[branch] in (None, e.before), e
            heads[branch] = e.after
            assert e.commits and e.commits[-1].sha == e.after
            for commit in e.commits:
                self.refs(e.project_id, commit.message, pos, closing=branch == "main")
        elif kind == "ref.created":
            p = self.active(e.project_id)
            table = p["heads"] if e.ref_type == "branch" else p["tags"]
            assert e.ref not in table, e
            if e.ref_type == "branch":
                p["heads"][e.ref] = e.sha
            else:
                p["tags"].add(e.ref)
        elif kind == "ref.deleted":
            p = self.active(e.project_id)
            if e.ref_type == "branch":
                assert e.ref != "main"
                del p["heads"][e.ref]
            else:
                p["tags"].remove(e.ref)
        else:  # pragma: no cover - a new event type needs a rule here
            raise AssertionError(f"no consistency rule for {kind}")

    def finish(self) -> None:
        """Only closes still inside their window when the stream ended may be missing."""
        assert all(d > self.position for d in self.expect_closed.values()), self.expect_closed
