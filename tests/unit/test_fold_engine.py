"""The fold engine writes exactly what the overlay's bulk apply writes, table by table, in any segments.

The oracle is the Applier over mutation tuples (``precise=False``, no outbox):
what rebuilds ran before the engine, and what live apply still runs.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from events.log import EventLog
from events.types import EVENT_TYPES
from ops.simulate import simulate
from projections.errors import StoreError
from projections.fold.applier import Applier, plan_rows
from projections.fold.apply import registry
from projections.fold.engine import FoldProgress, fold_log, handled_types
from projections.fold.engine import handlers as engine_handlers
from projections.store.graph import GraphStore
from projections.store.writeset import decode_props
from projections.versions.digest import digest
from tests.support.projection import accepted, append, ev, garbage
from tests.support.strategies import event_lists

TINY = 20_000  # bytes: a segment every few dozen events
HUGE = 1 << 30  # one segment
CREATIONS = {"issue.opened", "merge_request.opened", "comment.created", "label.created",
             "milestone.created", "ref.created", "user.created"}
POISON_TEXT = "see #1 POISON"


# --- workloads and oracles -----------------------------------------------------


def _workload(n: int, seed: int) -> list:
    """Simulated events, with creations logged late, deletions of live things, and poison."""
    rng = random.Random(seed)
    events = list(simulate(n, seed=seed))
    for i in range(len(events) - 6):
        if events[i].__struct_config__.tag in CREATIONS and rng.random() < 0.15:
            events.insert(i + rng.randint(1, 5), events.pop(i))
    busy = [e for e in events[n // 3 : n // 2] if getattr(e, "project_id", None) is not None]
    project = busy[0].project_id
    author = next(e.author_id for e in busy if getattr(e, "author_id", None) is not None)
    group = next(e.group_id for e in events if e.__struct_config__.tag == "project.created"
                 and e.group_id is not None)
    rows: list = [accepted(e) for e in events]
    s = {"source": "simulate"}
    rows.insert(n // 4, accepted(ev("comment.created", **s, comment_id=10**9, project_id=project,
                                    target_type="issue", target_id=1, author_id=author,
                                    body=POISON_TEXT)))
    rows.insert(n // 3, garbage(seed))
    rows.insert(n // 2, accepted(ev("project.deleted", **s, project_id=project)))
    rows.insert(2 * n // 3, accepted(ev("user.deleted", **s, user_id=author)))
    rows.insert(4 * n // 5, accepted(ev("group.deleted", **s, group_id=group)))
    return rows


def _raise_on_poison(monkeypatch) -> None:
    """Make the reference parser fail on one text, in the old apply step and the engine alike."""
    real = registry.parse_references

    def parse(text, **kw):
        if "POISON" in text:
            raise ValueError("reference parser failed on purpose")
        return real(text, **kw)

    monkeypatch.setattr(registry, "parse_references", parse)
    monkeypatch.setattr(engine_handlers, "parse_references", parse)


def _dump(store: GraphStore) -> dict:
    """Every table the rebuild writes, in key order (poison records without their time)."""
    env = store.env
    out = {}
    with env.read() as txn:
        for name, db in env.graph_tables:
            out[name] = list(txn.cursor(db).iternext())
        out["meta"] = [kv for kv in txn.cursor(env.meta).iternext() if kv[0] != b"updated_at"]
        out["poison"] = [(k, {f: v for f, v in decode_props(raw).items() if f != "at"})
                         for k, raw in txn.cursor(env.poison).iternext()]
    return out


def _rebuilt(log_path: Path, root: Path) -> tuple[dict, str]:
    """The overlay's bulk apply of the log (10,000 events a batch): its tables and digest."""
    with GraphStore(root, create=True) as store, EventLog(log_path, readonly=True) as event_log:
        def describe(position: int) -> tuple[str | None, str | None]:
            entry = event_log.get(position)
            return entry.event_id, entry.type

        applier = Applier(store, precise=False, strict=False, outbox=False, describe=describe)
        for rows in event_log.read_payloads(1, batch_size=10_000):
            applier.apply(plan_rows(rows))
        return _dump(store), digest(store).hexdigest


def _folded(log_path: Path, path: Path, **kw):
    with GraphStore(path, create=True) as store:
        result = fold_log(store, log_path, **kw)
        return result, _dump(store), digest(store).hexdigest


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """Per seed: the log, and what the overlay makes of it."""
    mp = pytest.MonkeyPatch()
    _raise_on_poison(mp)
    built = {}
    try:
        for seed in (0, 1, 2):
            root = tmp_path_factory.mktemp(f"seed{seed}")
            log_path = root / "log.db"
            append(log_path, _workload(3000, seed))
            built[seed] = (log_path, *_rebuilt(log_path, root / "old"))
    finally:
        mp.undo()
    return built


def _assert_same(tables: dict, expected: dict) -> None:
    for name, rows in expected.items():
        assert tables[name] == rows, f"table {name} differs"


# --- the properties ----------------------------------------------------------------


def test_every_event_type_has_a_handler():
    """The engine folds every canonical event type."""
    assert handled_types() == set(EVENT_TYPES)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("budget", [TINY, HUGE], ids=["many-segments", "one-segment"])
def test_the_store_equals_the_overlays(logs, tmp_path, monkeypatch, seed, budget):
    """Whatever the budget, every table, the checkpoint, the poison and the digest match."""
    _raise_on_poison(monkeypatch)
    log_path, expected, expected_digest = logs[seed]
    result, tables, got_digest = _folded(log_path, tmp_path / "new", budget_bytes=budget)
    _assert_same(tables, expected)
    assert got_digest == expected_digest
    assert result.position == 3005
    assert [p.position for p in result.poisoned] == [3000 // 4 + 1, 3000 // 3 + 1]
    assert result.events == 3005 - 2
    # A handler that raised ends its segment there (folded again without it).
    assert result.segments > 20 if budget == TINY else result.segments == 2
    assert 0 < result.peak_state_bytes <= budget or budget == TINY  # one event may exceed it


def test_a_fold_stopped_anywhere_resumes_to_the_same_store(logs, tmp_path, monkeypatch):
    """Stopped after a few segments (as by kill -9) or at a position, it resumes from its checkpoint."""
    _raise_on_poison(monkeypatch)
    log_path, expected, _ = logs[1]
    seen = []

    def stop_after_three(p: FoldProgress) -> None:
        seen.append(p)
        if len(seen) == 3:
            raise KeyboardInterrupt

    with GraphStore(tmp_path / "new", create=True) as store:
        with pytest.raises(KeyboardInterrupt):
            fold_log(store, log_path, budget_bytes=TINY, progress=stop_after_three)
        assert store.checkpoint() == seen[-1].position
        half = fold_log(store, log_path, end=1700, budget_bytes=TINY)
        assert half.position == store.checkpoint() == 1700
        rest = fold_log(store, log_path, budget_bytes=HUGE)
        assert rest.segments == 1 and rest.position == 3005  # the poison is behind it
        again = fold_log(store, log_path, budget_bytes=HUGE)
        assert again.events == 0 and again.segments == 0
    with GraphStore(tmp_path / "new") as store:
        _assert_same(_dump(store), expected)


def test_progress_reports_position_memory_and_eta(logs, tmp_path, monkeypatch):
    """Each segment written reports where the fold is, its state against the budget, and an ETA."""
    _raise_on_poison(monkeypatch)
    log_path = logs[0][0]
    reports: list[FoldProgress] = []
    _folded(log_path, tmp_path / "new", budget_bytes=TINY, progress=reports.append)
    assert [r.position for r in reports] == sorted({r.position for r in reports})
    assert reports[-1].position == reports[-1].target == 3005
    assert all(r.budget_bytes == TINY and r.state_bytes > 0 for r in reports)
    # A segment ends within a few events of reaching the budget (one event may add a lot).
    assert sorted(r.state_bytes for r in reports)[len(reports) // 2] < 2 * TINY
    assert reports[0].eta_secs is not None and reports[-1].eta_secs == 0


def test_a_gap_before_the_start_is_refused(logs, tmp_path):
    """Starting past the checkpoint's next position would skip events: refused, naming both."""
    with GraphStore(tmp_path / "new", create=True) as store, pytest.raises(StoreError, match="at position 0"):
        fold_log(store, logs[0][0], start=10)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event_lists())
def test_random_sequences_fold_like_the_overlay(events):
    """Renames, transfers, deletes and references in any order: the same tables, one event per segment."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        log_path = root / "log.db"
        append(log_path, events)
        expected, _ = _rebuilt(log_path, root / "old")
        _, tables, _ = _folded(log_path, root / "new", budget_bytes=1)
        _assert_same(tables, expected)


def test_a_full_map_grows_and_the_segment_is_written_again(logs, tmp_path, monkeypatch):
    """A store whose map fills up mid-fold grows and ends up the same."""
    _raise_on_poison(monkeypatch)
    log_path, expected, _ = logs[2]
    with GraphStore(tmp_path / "new", create=True, map_size=1 << 16) as store:
        fold_log(store, log_path, budget_bytes=HUGE)
        assert store.env.env.info()["map_size"] > 1 << 16
        _assert_same(_dump(store), expected)
