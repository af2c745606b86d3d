"""The simulator's output does not depend on the interpreter's hash seed, and seeds add up."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

from events.codec import encode_event
from ops.simulate import simulate
from projections.changes.outbox import OutboxReader
from projections.store.graph import GraphStore
from tests.support.projection import append, apply_log


def test_same_seed_is_stable_across_processes():
    """Another interpreter with another hash seed produces the very same bytes."""
    code = (
        "import hashlib; from ops.simulate import simulate; from events.codec import encode_event;"
        "print(hashlib.sha256(b''.join(encode_event(e) for e in simulate(3000, seed=7))).hexdigest())"
    )
    digests = {
        subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": hs},
                       capture_output=True, text=True, check=True).stdout.strip()
        for hs in ("1", "2")
    }
    here = hashlib.sha256(b"".join(encode_event(e) for e in simulate(3000, seed=7))).hexdigest()
    assert digests == {here}


def _graph(tmp_path, parts: list[tuple[int, int]]) -> tuple[dict, list[dict]]:
    """Nodes per type of the projection of ``parts`` (n events of seed s, one after the
    other in one log), and the change records the projection wrote."""
    log_path = tmp_path / "log.db"
    for n, seed in parts:
        append(log_path, simulate(n, seed=seed))
    with GraphStore(tmp_path / "v", create=True) as store:
        apply_log(store, log_path, batch=500)
        with store.env.read() as txn:
            nodes = store.counts(txn)["nodes"]
    outbox = OutboxReader(tmp_path / "v")
    try:
        _, _, records = outbox.read(0, 1_000_000)
    finally:
        outbox.close()
    return nodes, records


def test_two_seeds_build_the_sum_of_their_graphs(tmp_path):
    """Seeds have their own id spaces: one log holding seed 0 then seed 1 projects to as many
    nodes of each type as the two projected alone, and seed 1's events (its project.deleted
    included) change only seed 1's nodes."""
    alone0, _ = _graph(tmp_path / "a", [(4000, 0)])
    alone1, _ = _graph(tmp_path / "b", [(2000, 1)])
    both, records = _graph(tmp_path / "c", [(4000, 0), (2000, 1)])
    assert both == {t: alone0[t] + alone1[t] for t in both}
    later = [r for r in records if r["position"] > 4000]
    assert any(r["kind"] == "node_deleted" and r["node_type"] == "Project" for r in later)
    touched = {key.split(":")[1] for r in later for key in (r.get("node"), r.get("src"), r.get("dst"))
               if key}
    assert touched == {"simulate-1"}

