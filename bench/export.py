"""Benchmark: exporting a projection version (``fleet export graph``) and computing its digest.

    python bench/export.py [--events 200000] [--runs 3]

Builds a log of simulated events and a projection of it in a temporary data
dir (no NATS), then times, each run over the same version:

* ``digest``: the graph digest alone (nodes and edges, README "Export and digest");
* ``export``: the whole export (header with the digest, then every node and
  edge as JSON lines) written to /dev/null, from one read transaction.

Prints one ``name: value unit`` line per figure (medians over ``--runs``) and
removes the temporary directory.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from _util import figure, peak_rss_mb
from replay import build_log

from projections.read.export import export_lines
from projections.store.graph import GraphStore
from projections.versions.catalog import Versions
from projections.versions.digest import digest
from projections.versions.rebuild import rebuild


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-export-"))
    try:
        build_log(tmp / "log.db", args.events)
        built = rebuild(tmp / "log.db", tmp / "projections", with_digest=False)
        versions = Versions(tmp / "projections")
        digests, exports = [], []
        with GraphStore(versions.path(built.version)) as store:
            for _ in range(args.runs):
                started = time.perf_counter()
                d = digest(store)
                digests.append(time.perf_counter() - started)
                started = time.perf_counter()
                with open("/dev/null", "wb") as sink:
                    for block in export_lines(store, projection="graph", version=built.version):
                        sink.write(block)
                exports.append(time.perf_counter() - started)
        figure("events", args.events, "events")
        figure("nodes", d.nodes, "nodes")
        figure("edges", d.edges, "edges")
        figure("digest_secs", statistics.median(digests), "s")
        figure("export_secs", statistics.median(exports), "s")
        figure("export_rate", d.nodes / statistics.median(exports), "nodes/s")
        figure("export_lines_rate", (d.nodes + d.edges) / statistics.median(exports), "lines/s")
        figure("peak_rss", peak_rss_mb(), "MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
