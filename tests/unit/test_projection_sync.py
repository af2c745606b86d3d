"""Deferred fsync of live projection commits: flushed and unmarked on close, and a machine
crash makes the version be set aside and rebuilt from the log (its kill -9 test is in faults/)."""

from __future__ import annotations

import asyncio
import json

import pytest

from projections.errors import VersionDamaged
from projections.model.ontology import VERSION as V
from projections.read.reader import GraphReader
from projections.store import env as lmdbenv
from projections.store.graph import GraphStore
from projections.versions.catalog import Versions
from projections.versions.digest import digest
from projections.versions.rebuild import rebuild
from tests.support.cli import fleet
from tests.support.projection import apply_log, simulated_log, unsynced_marker
from tests.support.wait import wait_until
from workers.projector.loop import Projector, ProjectorConfig

pytestmark = pytest.mark.skipif(lmdbenv.boot_id() is None, reason="needs a boot id (Linux)")


@pytest.fixture
def deferred():
    """Deferred fsync in this process for the test (the flush thread runs every 50 ms)."""
    assert lmdbenv.defer_sync(0.05)
    yield
    lmdbenv.defer_sync(0)


def test_a_deferred_writer_marks_its_version_flushes_it_and_unmarks_it_on_close(tmp_path, deferred):
    simulated_log(tmp_path / "log.db", 200, seed=1)
    lmdbenv.defer_sync(0)
    with GraphStore(tmp_path / "v", create=True) as store:  # written with an fsync per commit
        apply_log(store, tmp_path / "log.db")
    simulated_log(tmp_path / "log.db", 400, seed=1, start=200)
    lmdbenv.defer_sync(0.05)
    store = GraphStore(tmp_path / "v")
    try:
        assert store.env.deferred and unsynced_marker(tmp_path / "v") is None  # opening is not writing
        apply_log(store, tmp_path / "log.db")
        assert unsynced_marker(tmp_path / "v")["boot_id"] == lmdbenv.boot_id()
        asyncio.run(wait_until(lambda: not store.env.dirty, timeout_secs=10, interval_secs=0.02,
                               message="the flush thread did not catch up"))
    finally:
        store.close()
    assert unsynced_marker(tmp_path / "v") is None  # closed cleanly: everything is on disk
    with GraphStore(tmp_path / "v") as store:
        assert store.checkpoint() == 400


def test_a_version_marked_by_another_boot_is_refused_with_the_way_out(tmp_path):
    simulated_log(tmp_path / "log.db", 100, seed=1)
    rebuild(tmp_path / "log.db", tmp_path / "proj")
    v1 = Versions(tmp_path / "proj").path(V)
    (v1 / lmdbenv.UNSYNCED).write_text(json.dumps({"boot_id": "an-earlier-boot", "pid": 42}))
    with pytest.raises(VersionDamaged, match="when the machine went down.*rebuilds it from the log"):
        GraphStore(v1)
    with pytest.raises(VersionDamaged):  # queries do not read it either
        GraphReader(tmp_path / "proj").node("project:gitlab:1")
    (v1 / lmdbenv.UNSYNCED).write_text("{torn")  # an unreadable marker is no better
    with pytest.raises(VersionDamaged):
        GraphStore(v1)


def test_the_projector_sets_a_damaged_version_aside_and_rebuilds_it(tmp_path):
    log_path, proj = tmp_path / "log.db", tmp_path / "proj"
    simulated_log(log_path, 1500, seed=3)
    rebuild(log_path, proj)
    versions = Versions(proj)
    with GraphStore(versions.path(V)) as store:
        before = digest(store)
    (versions.path(V) / lmdbenv.UNSYNCED).write_text(json.dumps({"boot_id": "an-earlier-boot"}))

    import asyncio

    stats = asyncio.run(Projector(log_path, proj, ProjectorConfig(poll_interval_ms=20)).run(
        asyncio.Event(), until_caught_up=True))
    assert stats.rebuild_error is None and versions.active() == V
    aside = [p.name for p in versions.root.iterdir() if p.name.startswith(f"v{V}.damaged-")]
    assert len(aside) == 1 and [v.version for v in versions.list()] == [V]
    with GraphStore(versions.path(V)) as store:
        assert digest(store) == before  # the same graph, from the log
    assert unsynced_marker(versions.path(V)) is None


def test_fleet_projections_names_a_damaged_version_and_what_was_set_aside(tmp_path, monkeypatch, capsys):
    simulated_log(tmp_path / "log.db", 300, seed=2)
    rebuild(tmp_path / "log.db", tmp_path / "projections")
    versions = Versions(tmp_path / "projections")
    (versions.path(V) / lmdbenv.UNSYNCED).write_text(json.dumps({"boot_id": "an-earlier-boot"}))
    args = ("--data-dir", str(tmp_path), "projections", "--no-digest")
    code, out, _ = fleet(monkeypatch, capsys, *args, "--json")
    [row] = json.loads(out)["versions"]
    assert code == 0 and row["state"] == "damaged" and "machine went down" in row["error"]

    aside = versions.set_aside(V)
    code, out, _ = fleet(monkeypatch, capsys, *args)
    assert code == 0 and "set aside after a machine crash" in out and str(aside) in out
    code, out, _ = fleet(monkeypatch, capsys, *args, "--json")
    listed = json.loads(out)
    assert listed["set_aside"] == [str(aside)] and [r["state"] for r in listed["versions"]] == ["building"]


def test_setting_a_version_aside_keeps_its_rollback_target(tmp_path):
    versions = Versions(tmp_path)
    versions.create(3)
    versions._update(3, previous=2)
    aside = versions.set_aside(3)
    assert versions.info(3).state == "building" and versions.info(3).previous == 2
    assert versions.reincarnation_of(3) == aside.name and (aside / "version.json").exists()
