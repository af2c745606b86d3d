"""Benchmark: queries through the query language against the GraphReader's own calls.

    python bench/query_lang.py [--events 100000] [--queries 2000] [--data-dir DIR]

Builds a log of simulated events (seed 0, as the examples under
examples/queries/ expect) in a temporary data dir, rebuilds the graph, then:

* ``neighbors``: the same random start nodes (issues, merge requests, users,
  projects) asked through ``GraphReader.neighbors(id, limit=100)`` and through
  ``run_query`` with the equivalent document, as a dict (what the CLI and MCP
  pass) and as JSON bytes (what ``POST /graph/query`` passes), the three
  taking turns at going first on each node; p50/p99 in microseconds and the
  ratio of the p50s;
* each example query of examples/queries/, run ``--queries / 10`` times: p50/p99
  in microseconds, items answered, nodes visited.

Prints ``name: value unit`` lines. With ``--data-dir`` the graph is built
there once and kept (bench/query.py's ``--data-dir`` graphs are seed 0 too).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from replay import build_log

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "queries"


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return (statistics.median(ordered) * 1e6,
            ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6)


def _timed(fn, items) -> list[float]:
    out = []
    for item in items:
        started = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1, help="seed of the start-node sample")
    parser.add_argument("--data-dir", type=Path,
                        help="build the graph here once and keep it (reused when present)")
    args = parser.parse_args()

    from projections.errors import QueryError, UnknownNode
    from projections.model.keys import format_key
    from projections.model.ontology import node_type
    from projections.read.query.execute import run_query
    from projections.read.reader import GraphReader
    from projections.versions.rebuild import rebuild

    tmp = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-query-lang-"))
    try:
        if not (tmp / "projections").exists():
            tmp.mkdir(parents=True, exist_ok=True)
            started = time.perf_counter()
            build_log(tmp / "log.db", args.events)
            rebuild(tmp / "log.db", tmp / "projections", with_digest=False)
            print(f"build: {time.perf_counter() - started:.1f} s")
        rng = random.Random(args.seed)
        with GraphReader(tmp / "projections") as reader:
            print(f"events: {reader.counts()['position']} events")
            starts = []
            with reader.snapshot() as snap:
                for type_name in ("Issue", "MergeRequest", "User", "Project"):
                    keys = list(snap.type_scan(node_type(type_name).code))
                    starts += [format_key(rng.choice(keys)) for _ in range(args.queries // 4)]
            rng.shuffle(starts)
            docs = [{"type": "neighbors", "from": {"id": s}, "limit": 100} for s in starts]
            raw = [json.dumps(d).encode() for d in docs]
            for i in range(min(200, len(starts))):  # warm the caches and the plans
                reader.neighbors(starts[i], limit=100)
                run_query(reader, docs[i])
            direct, language, language_bytes = [], [], []
            for i, (start, doc, body) in enumerate(zip(starts, docs, raw)):
                calls = [(direct, partial(reader.neighbors, start, limit=100)),
                         (language, partial(run_query, reader, doc)),
                         (language_bytes, partial(run_query, reader, body))]
                # whichever runs first on a node pays for its cold pages: take turns
                for samples, call in calls[i % 3:] + calls[: i % 3]:
                    started = time.perf_counter()
                    call()
                    samples.append(time.perf_counter() - started)
            d50, d99 = _percentiles(direct)
            l50, l99 = _percentiles(language)
            b50, b99 = _percentiles(language_bytes)
            print(f"neighbors_reader_p50: {d50:.1f} us")
            print(f"neighbors_reader_p99: {d99:.1f} us")
            print(f"neighbors_language_p50: {l50:.1f} us")
            print(f"neighbors_language_p99: {l99:.1f} us")
            print(f"neighbors_language_json_p50: {b50:.1f} us")
            print(f"neighbors_language_json_p99: {b99:.1f} us")
            print(f"neighbors_language_ratio_p50: {l50 / d50:.2f} x")
            print(f"neighbors_language_json_ratio_p50: {b50 / d50:.2f} x")
            runs = max(10, args.queries // 10)
            for path in sorted(EXAMPLES.glob("*.json")):
                body = path.read_bytes()
                try:
                    answer = run_query(reader, body)
                except (QueryError, UnknownNode) as e:  # a log too short for the nodes the example names
                    print(f"example_{path.stem}: n/a ({e})")
                    continue
                samples = _timed(lambda b: run_query(reader, b), [body] * runs)
                p50, p99 = _percentiles(samples)
                print(f"example_{path.stem}_p50: {p50:.0f} us")
                print(f"example_{path.stem}_p99: {p99:.0f} us")
                print(f"example_{path.stem}_items: {len(answer['items'])} items"
                      f" (visited {answer['budget']['nodes_visited']},"
                      f" exhausted {answer['budget']['exhausted']})")
    finally:
        if args.data_dir is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
