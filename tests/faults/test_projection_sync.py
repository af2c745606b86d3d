"""A deferred-fsync writer killed with kill -9: its commits survive (real LMDB, a child process)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from projections.store import env as lmdbenv
from projections.store.graph import GraphStore
from projections.versions.digest import digest
from tests.support.projection import apply_log, simulated_log, unsynced_marker

pytestmark = pytest.mark.skipif(lmdbenv.boot_id() is None, reason="needs a boot id (Linux)")


_DEFERRED_WRITER = textwrap.dedent("""
    import sys, time
    sys.path[:0] = [{root!r}]
    from projections.store import env as lmdbenv
    from projections.store.graph import GraphStore
    from tests.support.projection import apply_log
    lmdbenv.defer_sync(3600)  # no flush before the kill
    store = GraphStore({path!r}, create=True)
    apply_log(store, {log!r})
    print(store.checkpoint(), flush=True)
    time.sleep(600)
""")


@pytest.mark.slow
def test_kill_9_of_a_deferred_writer_loses_no_commit(tmp_path):
    """The commits are in the page cache: a process crash keeps them, and the same boot's
    marker does not count as damage."""
    simulated_log(tmp_path / "log.db", 600, seed=5)
    code = _DEFERRED_WRITER.format(root=os.getcwd(),
                                   path=str(tmp_path / "v"), log=str(tmp_path / "log.db"))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "600"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert unsynced_marker(tmp_path / "v")["boot_id"] == lmdbenv.boot_id()
    with GraphStore(tmp_path / "v") as crashed:
        assert crashed.checkpoint() == 600
        got = digest(crashed)
    with GraphStore(tmp_path / "ref", create=True) as ref:
        apply_log(ref, tmp_path / "log.db")
        assert digest(ref) == got
