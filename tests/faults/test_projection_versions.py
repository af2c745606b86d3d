"""A rebuild killed with kill -9 resumes from its checkpoint (a child process, real LMDB)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import pytest

from projections.model.ontology import VERSION as V
from projections.store.graph import GraphStore
from projections.versions.catalog import Versions
from projections.versions.digest import digest
from projections.versions.rebuild import rebuild
from tests.support.projection import simulated_log
from tests.support.wait import wait_until


@pytest.mark.slow
def test_rebuild_resumes_from_its_checkpoint_after_kill_9(tmp_path):
    """kill -9 in the middle of a rebuild; the rerun resumes from the checkpoint, not from 0."""
    log_path = tmp_path / "log.db"
    simulated_log(log_path, 30_000, seed=11)
    proj = tmp_path / "proj"
    script = (f"from projections.versions.rebuild import rebuild; rebuild({str(log_path)!r}, {str(proj)!r},"
              " budget_bytes=1 << 20)")
    child = subprocess.Popen([sys.executable, "-c", script])
    version_dir = proj / "graph" / f"v{V}"
    killed_at = 0

    def far_enough_or_done() -> bool:
        nonlocal killed_at
        if child.poll() is not None:
            return True
        if (version_dir / "data.mdb").exists():
            with GraphStore(version_dir) as store:
                killed_at = store.checkpoint()
        return killed_at >= 5000

    try:
        asyncio.run(wait_until(far_enough_or_done, timeout_secs=120, interval_secs=0.05,
                               message=lambda: f"the rebuild's checkpoint is {killed_at}"))
        assert child.poll() is None, "the rebuild finished before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
    finally:
        if child.poll() is None:  # the wait timed out: do not wait for the whole rebuild
            child.kill()
        child.wait()
    assert child.returncode == -signal.SIGKILL and killed_at >= 5000
    assert Versions(proj).info(V).state == "building"

    resumed = rebuild(log_path, proj)
    assert resumed.resumed_from >= killed_at > 0
    assert resumed.position == 30_000 and resumed.promoted

    fresh = rebuild(log_path, tmp_path / "fresh")
    assert resumed.digest == fresh.digest
    with GraphStore(version_dir) as store:
        assert digest(store).hexdigest == fresh.digest
