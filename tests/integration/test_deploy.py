"""A deploy of a new projection version on a live fleet, as README "Version lifecycle"
describes it: two releases of the worker beside each other, a rollback, a replay from
scratch and a roll forward, while events keep arriving and a subscriber keeps a copy."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import time

import pytest

from events.log import EventLog
from projections.model.ontology import VERSION as V
from projections.store.graph import GraphStore
from projections.versions.catalog import Versions
from projections.versions.digest import digest
from tests.support.changes import example_cmd, graph_env, graph_settings, load_example
from tests.support.cli import fleet_cmd
from tests.support.paths import ROOT
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

NEXT = V + 1
#: the next release (code version V + 1, label names upper-cased) in every process it starts
NEXT_RELEASE = ROOT / "tests" / "support" / "next_release"


def test_deploy_rollback_replay_and_roll_forward_keep_a_subscribers_copy_exact(settings, tmp_path):
    """The copy kept by the example from the stream alone ends equal to the active version
    (digest), having checked every version change's digest, with no resync and no HTTP read."""
    s = graph_settings(settings)
    env = graph_env(s, FLEET_HEARTBEAT_INTERVAL_SECS="1", FLEET_PROJECTOR_POLL_MS="100",
                    FLEET_EXPECTED_PROCESSES="ingest,worker")
    versions = Versions(s.projections_dir)
    logs = tmp_path / "logs"
    logs.mkdir()
    next_env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(NEXT_RELEASE),
                                                                   env.get("PYTHONPATH")]))}
    procs: dict[str, subprocess.Popen] = {}

    def start(name: str, cmd: list[str], release: dict[str, str] = env) -> None:
        procs[name] = subprocess.Popen(cmd, env=release, stdout=subprocess.DEVNULL,
                                       stderr=(logs / f"{name}.log").open("wb"))

    def tail(*names: str) -> str:
        return "\n".join(f"--- {n}\n" + (logs / f"{n}.log").read_text()[-3000:] for n in names)

    def run(cmd: list[str], release: dict[str, str] = env, timeout: float = 120) -> str:
        result = subprocess.run(cmd, env=release, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, result.stdout + result.stderr[-3000:]
        return result.stdout

    def wait(predicate, secs: float, what: str, *names: str):
        return asyncio.run(wait_until(predicate, timeout_secs=secs, interval_secs=0.2,
                                      message=lambda: f"{what}\n{tail(*names)}"))

    db = tmp_path / "copy.sqlite"
    try:
        run(fleet_cmd("simulate", "--events", "1500", "--seed", "3"))
        start("ingest", fleet_cmd("ingest"))
        start("worker", fleet_cmd("worker"))
        wait(lambda: versions.active() == V, 60, "the first version was not built", "worker")
        start("example", example_cmd(s, db, "--batch", "200"))
        # Events keep arriving through everything below (the first 1500 are repeats).
        start("simulate", fleet_cmd("simulate", "--events", "8000", "--seed", "3", "--rate", "350"))

        def log_head() -> int:
            with EventLog(s.log_path, readonly=True) as event_log:
                return event_log.head

        def events_flow(more: int, what: str) -> None:
            target = max(log_head(), 1500) + more
            wait(lambda: log_head() >= target, 60, f"no new events before {what}", "ingest")

        events_flow(300, "the deploy")

        # Deploy: the next release's worker beside the running one builds v(N+1) and promotes it.
        start("worker-next", fleet_cmd("worker", "--name", "worker-next"), next_env)
        wait(lambda: versions.active() == NEXT, 90, "the next release did not promote its version",
             "worker-next", "worker")
        events_flow(300, "the rollback")
        # Roll back: the old release's worker applies the old version again.
        run(fleet_cmd("rollback", "graph"))
        assert versions.active() == V
        events_flow(300, "the replay")
        # Replay the next version from scratch beside it, then the next release rolls forward.
        run(fleet_cmd("replay", "graph", "--from-scratch", "--no-promote"), next_env)
        wait(lambda: versions.active() == NEXT, 90, "the next release did not roll forward",
             "worker-next", "worker")

        assert procs["simulate"].wait(timeout=60) == 0, tail("simulate")
        heads: list[int] = []

        def at_head() -> bool:  # the log stopped growing and the active version applied all of it
            heads.append(log_head())
            with GraphStore(versions.path(NEXT)) as store:
                return len(heads) > 5 and heads[-1] == heads[-6] and store.checkpoint() == heads[-1]
        wait(at_head, 60, "the active version did not reach the log head", "ingest", "worker-next")

        with GraphStore(versions.path(NEXT)) as store:
            expected = digest(store).hexdigest
        example = load_example()

        def copy_digest() -> str:
            copy = example.GraphCopy(db)
            try:
                return copy.digest()
            finally:
                copy.close()
        wait(lambda: copy_digest() == expected, 60, f"the copy did not reach digest {expected}",
             "example", "worker")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    example_log = (logs / "example.log").read_text()
    assert "0 resyncs)" in example_log and "out of order" not in example_log, example_log[-3000:]
    # The first build and three version changes (promotion, rollback, roll forward), each checked
    # against its digest, none of them the same graph as another: events were applied throughout.
    checked = re.findall(r"version change complete: v\d+, \d+ diff changes, digest (\w+) matches",
                         example_log)
    assert len(checked) == 4 and len(set(checked)) == 4, example_log[-3000:]
    label_names = [props["name"] for _, (node_type, props) in example.GraphCopy(db).graph()[0].items()
                   if node_type == "Label" and "name" in props]
    assert label_names and all(name == name.upper() for name in label_names)  # the next release's
