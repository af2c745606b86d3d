"""The downstream example killed halfway through the GRAPH stream (real nats-server, real LMDB)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess

import pytest

from projections.model.ontology import VERSION as V
from tests.support.changes import (
    append_events,
    example_cmd,
    load_example,
    project,
    projected,
    projection_graph,
    publish_and_read,
    run_example,
    workload,
)
from tests.support.wait import wait_until


@pytest.mark.slow
def test_the_example_copy_equals_the_projection_even_when_killed_halfway(settings, tmp_path):
    """The downstream example, kill -9'd halfway and restarted, ends with the projection's graph."""
    s, _ = projected(settings, 2500)

    first = publish_and_read(s)[0]
    db = tmp_path / "copy.sqlite"
    child = subprocess.Popen(example_cmd(s, db, "--batch", "100"), stderr=subprocess.DEVNULL)
    half = first.watermark // 2

    def applied() -> int:
        try:
            with sqlite3.connect(db) as conn:
                row = conn.execute("SELECT seq FROM position").fetchone()
        except sqlite3.OperationalError:
            return 0
        return row[0] if row else 0

    try:
        asyncio.run(wait_until(lambda: applied() >= half, timeout_secs=60, interval_secs=0.01))
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait()
    assert child.returncode == -signal.SIGKILL and applied() < first.watermark

    # The fleet moves on while the example is down.
    append_events(s, workload(4000, start=2500))
    project(s)
    second = publish_and_read(s)[0]
    assert second.published > 0
    run_example(s, db)

    copy = load_example().GraphCopy(db)
    nodes, edges = copy.graph()
    assert copy.position()[:2] == (V, second.watermark)
    copy.close()
    expected_nodes, expected_edges = projection_graph(s)
    assert len(nodes) > 1000 and len(edges) > 1000
    assert nodes == expected_nodes
    assert edges == expected_edges
