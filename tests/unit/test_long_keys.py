"""Valid events whose names would make keys past LMDB's 511 bytes stop no projection.

Paths and names may be 1,000 characters (4,000 bytes of UTF-8); LMDB keys are
at most 511 bytes. Lookups by path hash what is past 300 bytes (and still
resolve); anything else too long for LMDB is pinned to its event and skipped
as poison, the same way in live apply, in a rebuild and in a catch-up.
"""

from __future__ import annotations

import pytest

from projections.errors import PoisonEvent
from projections.fold.engine import fold_log
from projections.read.export import export
from projections.read.reader import GraphReader
from projections.store.graph import GraphStore
from projections.versions.digest import digest
from projections.versions.rebuild import rebuild
from tests.support.projection import append, apply_log, ev

S = {"source": "gitlab"}
LONG_GROUP = "Grüppe-" + "é" * 900  # 1,807 bytes
LONG_PROJECT = "p" * 1000


def _events() -> list:
    return [
        ev("group.created", **S, group_id=1, name="g", path=LONG_GROUP),
        ev("project.created", **S, project_id=2, name="p", path=LONG_PROJECT, group_id=1),
        ev("user.created", **S, user_id=5, username="u"),
        ev("merge_request.opened", **S, merge_request_id=7, project_id=2, iid=1, title="t",
           author_id=5, source_branch="a", target_branch="main"),
        # A sha is only 4-64 characters; merge_commit_sha is a name of up to 1,000.
        ev("merge_request.merged", **S, merge_request_id=7, project_id=2,
           merge_commit_sha="f" * 1000),
        ev("issue.opened", **S, issue_id=9, project_id=2, iid=1, title="after", author_id=5),
    ]


@pytest.fixture
def log_path(tmp_path):
    path = tmp_path / "log.db"
    append(path, _events())
    return path


def test_live_apply_goes_on_past_every_long_name_and_paths_resolve(log_path, tmp_path):
    with GraphStore(tmp_path / "live", create=True) as store:
        apply_log(store, log_path, batch=10)
        assert store.checkpoint() == 6
        live = digest(store).hexdigest
        assert export(store).nodes["issue:gitlab:9"][1]["title"] == "after"
    rebuild(log_path, tmp_path / "projections")  # the fold engine, promoted
    with GraphReader(tmp_path / "projections") as reader:
        assert reader.resolve(f"gitlab:{LONG_GROUP}") == reader.resolve("group:gitlab:1")
        assert reader.resolve(f"gitlab:{LONG_GROUP}/{LONG_PROJECT}") == reader.resolve("project:gitlab:2")
        assert reader.resolve(f"gitlab:{LONG_GROUP}/{LONG_PROJECT}#1") == reader.resolve("issue:gitlab:9")
        with reader.snapshot() as snap:
            assert digest(snap.store).hexdigest == live


@pytest.mark.parametrize("changes", [False, True], ids=["rebuild", "catch-up"])
def test_the_fold_pins_what_lmdb_refuses_and_equals_live_apply(log_path, tmp_path, changes):
    with GraphStore(tmp_path / "live", create=True) as live:
        apply_log(live, log_path, batch=10)
        expected = digest(live).hexdigest
    with GraphStore(tmp_path / "fold", create=True) as store:
        result = fold_log(store, log_path, changes=changes)
        assert result.position == 6
        assert all(isinstance(p, PoisonEvent) and p.event_id for p in result.poisoned)
        assert digest(store).hexdigest == expected


def test_strict_rebuild_stops_at_the_event_lmdb_refuses(log_path, tmp_path):
    with GraphStore(tmp_path / "live", create=True) as live:
        apply_log(live, log_path, batch=10)
        with live.env.read() as txn:
            poisoned = [k for k, _ in txn.cursor(live.env.poison)]
    if not poisoned:
        pytest.skip("the model holds every name of this log: nothing for strict to stop at")
    with GraphStore(tmp_path / "fold", create=True) as store:
        with pytest.raises(PoisonEvent) as raised:
            fold_log(store, log_path, strict=True)
        assert raised.value.position == 5 and store.checkpoint() == 4
