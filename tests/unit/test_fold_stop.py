"""A stop reaches a fold within one chunk, not one segment: what was folded is written and the
fold resumes from it to the same graph (how `fleet worker` stops within its grace period mid-rebuild)."""

from __future__ import annotations

import threading

from projections.fold.engine import fold_log
from projections.store.graph import GraphStore
from projections.versions.digest import digest
from tests.support.projection import simulated_log

HUGE = 1 << 30  # one segment for the whole log


def test_a_stop_writes_the_chunk_folded_so_far_and_a_second_fold_resumes(tmp_path):
    """With stop set, a one-segment fold writes its first chunk and returns; going on gives the same digest."""
    log_path = tmp_path / "log.db"
    head = simulated_log(log_path, 3000)
    stop = threading.Event()
    stop.set()
    with GraphStore(tmp_path / "paused", create=True) as store:
        paused = fold_log(store, log_path, budget_bytes=HUGE, chunk=500, stop=stop)
        assert paused.position == 500 and store.checkpoint() == 500
        rest = fold_log(store, log_path, budget_bytes=HUGE, chunk=500)
        assert rest.position == head and paused.events + rest.events == head
        resumed = digest(store).hexdigest
    with GraphStore(tmp_path / "straight", create=True) as store:
        assert fold_log(store, log_path, budget_bytes=HUGE, chunk=500).position == head
        assert digest(store).hexdigest == resumed


def test_a_stopping_worker_pauses_its_rebuild_and_the_next_one_resumes_it(tmp_path, caplog):
    """The graph.rebuild actor of a stopping worker leaves after a chunk, unpromoted; the next run promotes."""
    from projections.model.ontology import VERSION
    from projections.versions.catalog import Versions
    from workers.projector.runtime import RuntimeConfig, WorkerRuntime

    log_path, proj = tmp_path / "log.db", tmp_path / "proj"
    head = simulated_log(log_path, 12_000)  # more than one 10,000-event chunk
    config = RuntimeConfig(log_path=log_path, projections_dir=proj, nats_url="nats://127.0.0.1:1",
                           poll_interval_secs=60, heartbeat_interval_secs=60)
    stopping = WorkerRuntime(config)
    stopping.stopping()
    with caplog.at_level("INFO", logger="workers.projector.runtime"):
        stopping.rebuild(VERSION)
    paused = next(r for r in caplog.records if r.getMessage() == "rebuild paused by the stop")
    assert paused.position == 10_000 and paused.promoted is False
    assert Versions(proj).active() is None
    WorkerRuntime(config).rebuild(VERSION)
    assert Versions(proj).active() == VERSION
    with GraphStore(proj / "graph" / f"v{VERSION}") as store:
        assert store.checkpoint() == head
