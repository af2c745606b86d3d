"""Versions: rebuild beside the active one, promotion, rollback, drop (resume after kill -9: faults/)."""

from __future__ import annotations

import asyncio
import os

import pytest

from projections.errors import StoreBusy, UnknownNode, UnknownVersion, VersionStateError
from projections.model.keys import parse_key
from projections.model.ontology import VERSION as V
from projections.read.reader import GraphReader
from projections.store.lock import WriterLock
from projections.versions.catalog import Versions
from projections.versions.rebuild import rebuild
from tests.support.projection import append, ev, simulated_log
from workers.projector.loop import Projector, ProjectorConfig


@pytest.fixture
def log_path(tmp_path):
    path = tmp_path / "log.db"
    simulated_log(path, 3000, seed=5)
    return path


def test_first_rebuild_promotes_and_records_states(log_path, tmp_path):
    """The first build becomes active; its bookkeeping says when and from what."""
    proj = tmp_path / "proj"
    result = rebuild(log_path, proj)
    versions = Versions(proj)
    assert versions.active() == V and result.previous is None and result.promoted
    [info] = versions.list()
    assert info.state == "active" and info.built_at and info.promoted_at
    assert (proj / "graph" / "ACTIVE").read_text() == f"v{V}\n"


def test_rebuilding_the_active_version_is_refused(log_path, tmp_path):
    """The active version is kept current by the projector; replaying it is an error."""
    rebuild(log_path, tmp_path / "proj")
    with pytest.raises(VersionStateError, match="already active"):
        rebuild(log_path, tmp_path / "proj")


def test_queries_during_a_rebuild_answer_from_the_old_version(log_path, tmp_path):
    """While v2 builds, readers see v1 (an open snapshot survives the promotion)."""
    proj = tmp_path / "proj"
    rebuild(log_path, proj)
    append(log_path, [ev("user.created", user_id=9001, username="newcomer")])
    reader = GraphReader(proj)
    assert reader.counts()["position"] == 3000
    seen = []

    def during(progress):
        if progress.phase != "promoted":
            try:
                reader.node("user:gitlab:9001")
                visible = True
            except UnknownNode:
                visible = False
            seen.append((reader.version, reader.counts()["position"], visible))

    with reader.snapshot() as old:
        result = rebuild(log_path, proj, version=V + 1, budget_bytes=1 << 16, progress=during)
        # A snapshot taken before the promotion keeps reading the old version.
        assert old.store.path.name == f"v{V}"
        assert old.props(parse_key("user:gitlab:9001")) is None
    assert result.promoted and result.previous == V
    assert seen and all(s == (V, 3000, False) for s in seen)
    assert reader.version == V + 1
    assert reader.node("user:gitlab:9001").props["username"] == "newcomer"
    reader.close()


def test_version_bump_makes_the_projector_rebuild_and_promote(log_path, tmp_path):
    """A projector whose code version is not active rebuilds it, promotes it, then goes live."""
    proj = tmp_path / "proj"
    rebuild(log_path, proj)
    append(log_path, [ev("user.created", user_id=9002, username="late")])
    projector = Projector(log_path, proj, ProjectorConfig(poll_interval_ms=20),
                          version=V + 1)
    stats = asyncio.run(asyncio.wait_for(projector.run(asyncio.Event(), until_caught_up=True), 60))
    versions = Versions(proj)
    assert versions.active() == V + 1
    assert versions.info(V).state == "retired"
    assert stats.rebuild_error is None and len(stats.rebuilds) == 1
    assert stats.version == V + 1 and stats.lag == 0
    with GraphReader(proj) as reader:
        assert reader.node("user:gitlab:9002").props["username"] == "late"


def test_rollback_reactivates_the_previous_version(log_path, tmp_path):
    """Rollback switches ACTIVE back; readers follow; the rolled-back version can be dropped."""
    proj = tmp_path / "proj"
    rebuild(log_path, proj)
    append(log_path, [ev("user.created", user_id=9003, username="v2only")])
    rebuild(log_path, proj, version=V + 1)
    versions = Versions(proj)
    reader = GraphReader(proj)
    assert reader.node("user:gitlab:9003")
    assert versions.rollback() == (V + 1, V)
    assert versions.active() == V and versions.info(V + 1).state == "retired"
    assert reader.version == V
    with pytest.raises(Exception, match="no node user:gitlab:9003"):
        reader.node("user:gitlab:9003")
    with pytest.raises(VersionStateError, match="is active"):
        versions.drop(V)
    with pytest.raises(VersionStateError, match="nothing to roll back to"):
        versions.rollback()
    reader.close()
    versions.drop(V + 1)
    assert [v.version for v in versions.list()] == [V]
    with pytest.raises(UnknownVersion, match=f"versions on disk: v{V}"):
        versions.drop(V + 1)


def test_a_projector_does_not_rebuild_a_version_rolled_back_from(log_path, tmp_path):
    """After a rollback the projector leaves the retired code version alone (no flip-flop)."""
    proj = tmp_path / "proj"
    rebuild(log_path, proj)
    rebuild(log_path, proj, version=V + 1)
    Versions(proj).rollback()
    projector = Projector(log_path, proj, ProjectorConfig(), version=V + 1)
    stats = asyncio.run(asyncio.wait_for(projector.run(asyncio.Event(), until_caught_up=True), 30))
    assert Versions(proj).active() == V and stats.rebuilds == [] and stats.applied == 0


def test_one_writer_per_version(tmp_path):
    """A second writer of the same version is refused, naming the holder."""
    with WriterLock(tmp_path / "v1"):
        with pytest.raises(StoreBusy, match=f"pid {os.getpid()}"):
            WriterLock(tmp_path / "v1").acquire()
    WriterLock(tmp_path / "v1").acquire().release()


def test_promote_refuses_a_version_still_building(tmp_path):
    """Only a finished version can become active."""
    versions = Versions(tmp_path)
    versions.create(3)
    with pytest.raises(VersionStateError, match="still building"):
        versions.promote(3)


def test_a_rebuild_without_a_log_says_so_and_leaves_the_version_unlocked(tmp_path):
    """A rebuild started before the log exists fails clearly and holds no writer lock after."""
    from events.errors import NotFound
    from projections.store.lock import WriterLock
    from projections.versions.catalog import Versions
    from projections.versions.rebuild import rebuild

    with pytest.raises(NotFound, match="fleet ingest"):
        rebuild(tmp_path / "missing.db", tmp_path / "projections", version=1)
    lock = WriterLock(Versions(tmp_path / "projections").path(1)).acquire()
    lock.release()


def test_a_stale_rebuild_of_an_older_version_never_moves_active(log_path, tmp_path):
    """A redelivered rebuild of v1 after v2's promotion is refused; ACTIVE stays on v2."""
    proj = tmp_path / "proj"
    rebuild(log_path, proj)
    rebuild(log_path, proj, version=V + 1)
    with pytest.raises(VersionStateError, match="newer than"):
        rebuild(log_path, proj, version=V)
    with pytest.raises(VersionStateError, match="never replaces a newer version"):
        Versions(proj).promote(V)
    assert Versions(proj).active() == V + 1


def test_a_worker_runtime_settles_a_rebuild_task_for_another_version(log_path, tmp_path):
    """The graph.rebuild actor of a v2 worker given a v1 task does nothing, and says so."""
    from workers.projector.runtime import RuntimeConfig, WorkerRuntime

    proj = tmp_path / "proj"
    rebuild(log_path, proj, version=V + 1)
    config = RuntimeConfig(log_path=log_path, projections_dir=proj, nats_url="nats://127.0.0.1:1",
                           poll_interval_secs=60, heartbeat_interval_secs=60)
    runtime = WorkerRuntime(config)
    runtime.rebuild(V)  # the code's version is V: a task for V is built, but V + 1 is newer
    runtime.rebuild(V + 7)  # not this code's version at all
    assert Versions(proj).active() == V + 1
    assert not Versions(proj).exists(V) and not Versions(proj).exists(V + 7)


def test_an_outdated_projector_stays_idle_and_says_so(log_path, tmp_path):
    """Code v1 beside an active v2: it neither rebuilds nor writes, and reports outdated."""
    proj = tmp_path / "proj"
    rebuild(log_path, proj, version=V + 1)
    projector = Projector(log_path, proj, ProjectorConfig(poll_interval_ms=20),
                          version=V)
    assert projector.step() == 0
    assert projector.stats.outdated_by == V + 1 and projector.stats.rebuilds == []
    assert Versions(proj).active() == V + 1 and not Versions(proj).exists(V)


def test_a_dead_projector_thread_fails_the_worker(log_path, tmp_path):
    """An exception that kills the projector's thread is reported, not hidden behind ok."""
    from workers.projector.runtime import RuntimeConfig, WorkerRuntime

    proj = tmp_path / "proj"
    rebuild(log_path, proj)
    config = RuntimeConfig(log_path=log_path, projections_dir=proj, nats_url="nats://127.0.0.1:1",
                           poll_interval_secs=0.01, heartbeat_interval_secs=60)
    failed = []
    runtime = WorkerRuntime(config, on_failure=lambda: failed.append(True))

    def broken_step() -> int:
        raise RuntimeError("simulated: disk gone")

    runtime.projector.step = broken_step
    runtime._serve_projector()  # what the projector thread runs
    assert failed == [True]
    state, details = runtime.health()
    assert state == "failed" and "RuntimeError: simulated: disk gone" in details["failure"]


def test_a_rollback_tells_subscribers_exactly_what_changed(log_path, tmp_path):
    """The restored version's outbox gets a rebuilt notice naming the version rolled back
    from, then the difference from it as ordinary changes."""
    from projections.changes.outbox import OutboxReader
    from projections.versions.transition import rollback

    proj = tmp_path / "proj"
    rebuild(log_path, proj)
    append(log_path, [ev("user.created", user_id=9004, username="v2only")])
    result = rebuild(log_path, proj, version=V + 1, emit_diff=True)
    assert result.diff["previous"] == V and result.diff["nodes_upserted"] == 1
    current, restored, diff = rollback(proj)
    assert (current, restored) == (V + 1, V) and Versions(proj).active() == V
    reader = OutboxReader(Versions(proj).path(V))
    _, _, records = reader.read(0, 100)
    reader.close()
    first, notice, *changes, synced = records  # v1's own first promotion, then the rollback's
    assert first["kind"] == "rebuilt" and first["previous"] is None
    assert notice["kind"] == "rebuilt" and notice["previous"] == V + 1 and notice["version"] == V
    assert len(changes) == diff.changes and all(c["diff"] for c in changes)
    assert synced["kind"] == "synced" and synced["previous"] == V + 1 and synced["digest"]
    assert any(c["kind"] == "node_deleted" and c["node"] == "user:gitlab:9004" for c in changes)


def test_after_a_rollback_health_names_the_active_version_and_why_it_stands_still(log_path, tmp_path):
    """Rolled back to v1 under v2's code: health reports v1 (not the retired v2) and says that
    nothing applies it until v1's release runs."""
    from workers.projector.runtime import RuntimeConfig, WorkerRuntime

    proj = tmp_path / "proj"
    rebuild(log_path, proj)
    rebuild(log_path, proj, version=V + 1)
    config = RuntimeConfig(log_path=log_path, projections_dir=proj, nats_url="nats://127.0.0.1:1",
                           poll_interval_secs=60, heartbeat_interval_secs=60,
                           projector=ProjectorConfig(auto_rebuild=False))
    runtime = WorkerRuntime(config)
    runtime.projector.version = V + 1
    assert runtime.projector.step() == 0  # writes v2 (active, caught up)
    Versions(proj).rollback()
    runtime.projector.step()  # lets go of v2
    state, details = runtime.health()
    assert [p["version"] for p in details["projections"]] == [V]
    assert f"active v{V} is older than this code's v{V + 1}" in details["rolled_back"]
    runtime.projector.close()


def test_a_rebuild_that_waited_for_the_lock_finds_the_version_promoted_and_leaves_it(log_path, tmp_path):
    """Two rebuild tasks for one version (a redelivery): the one that waited for the writer lock
    must not go on writing the version the other has just promoted."""
    import threading
    import time

    proj = tmp_path / "proj"
    rebuild(log_path, proj, promote=False)
    versions = Versions(proj)
    lock = WriterLock(versions.path(V)).acquire()
    outcome: list[BaseException | None] = []

    def second() -> None:
        try:
            rebuild(log_path, proj)
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 - handed to the test
            outcome.append(e)

    waiter = threading.Thread(target=second)
    waiter.start()
    time.sleep(0.5)  # the second task has checked the pointer and waits for the lock
    versions.promote(V)  # what the first task did meanwhile
    lock.release()
    waiter.join(timeout=30)
    assert isinstance(outcome[0], VersionStateError) and "already active" in str(outcome[0])
    assert versions.info(V).state == "active"
