"""The standalone benchmarks still run: each at a tiny size, checking its figure lines.

They are not timed here (timings belong in BENCHMARKS.md, measured on a quiet
machine); this only keeps them from rotting between the sessions that run them.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.support.paths import ROOT

pytestmark = pytest.mark.slow

_FIGURE = re.compile(r"^[^:]+: \S.*$")  # name: value unit


@pytest.mark.parametrize("script, args, figures", [
    ("ingest.py", ["--events", "2000"], ["ingest_rate", "batch_commit_p99", "peak_rss"]),
    ("replay.py", ["--events", "2000", "--runs", "1"], ["rebuild bulk", "live apply", "projection size"]),
    ("query.py", ["--events", "2000", "--queries", "10"], ["node p99", "3-hop"]),
    ("query_lang.py", ["--events", "6000", "--queries", "40"],
     ["neighbors_language_ratio_p50", "example_who-touched-blockers_p99"]),
    ("export.py", ["--events", "2000", "--runs", "1"], ["digest_secs", "export_secs", "export_rate"]),
    ("replica.py", ["--rows", "500", "--paced-events", "500", "--max-events", "500"],
     ["ship_rate", "replica_apply_rate", "lag_2000_p99", "lag_max_p99", "max_end_to_end_rate"]),
    # The peers are the bench's own requirements, not the project's: without
    # them the graphfleet half still runs and each peer's step says n/a.
    ("peers.py", ["--events", "2000", "--samples", "10", "--skip-kuzu", "--skip-eventsourcing"],
     ["graphfleet_ingest_rate", "graphfleet_rebuild_digest_equals_live: yes",
      "graphfleet_query_hops3_p99", "eventsourcing: n/a", "target_node_query_10x_kuzu: n/a"]),
])
def test_a_benchmark_runs_standalone_and_prints_its_figures(script, args, figures):
    run = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.strip().splitlines()
    assert lines and all(_FIGURE.match(line) for line in lines), run.stdout
    for name in figures:
        assert any(line.startswith(name) for line in lines), f"{name!r} missing from:\n{run.stdout}"
