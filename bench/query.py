"""Benchmark: in-process query latency over the graph projection.

    python bench/query.py [--events 100000] [--queries 2000] [--data-dir DIR]

Builds a log of simulated events in a temporary data dir, rebuilds the graph
projection, then times queries through ``GraphReader`` (each one opens its
own read transaction, as a request handler would) from random "typical"
start nodes: issues, merge requests, users and projects drawn uniformly from
the graph (and, as bench/peers.py does, from nodes of any type). Prints
``name: value unit`` lines (p50 and p99 in microseconds), how many path
searches found a path, gave up at their node bound or found none,
and removes the temporary directory. With ``--data-dir`` the log and the
projection are built there once and kept, so later runs (and runs of other
checkouts, for side-by-side comparisons) time queries over the same graph.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from replay import build_log  # noqa: E402  (bench/replay.py, same directory)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return (statistics.median(ordered) * 1e6,
            ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6)


def _sample_ids(reader, type_name: str, k: int, rng: random.Random) -> list[str]:
    from projections.model.keys import format_key
    from projections.model.ontology import node_type

    with reader.snapshot() as snap:
        keys = list(snap.type_scan(node_type(type_name).code))
    return [format_key(rng.choice(keys)) for _ in range(k)] if keys else []


def _sample_any(reader, k: int, rng: random.Random) -> list[str]:
    """``k`` ids drawn uniformly from every node of the graph (most are commits and comments)."""
    from projections.model.keys import format_key
    from projections.model.ontology import NODE_TYPES

    with reader.snapshot() as snap:
        keys = [key for t in NODE_TYPES for key in snap.type_scan(t.code)]
    return [format_key(rng.choice(keys)) for _ in range(k)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data-dir", type=Path,
                        help="build the graph here once and keep it (reused when present)")
    args = parser.parse_args()

    from projections.read import questions
    from projections.read.reader import GraphReader
    from projections.versions.rebuild import rebuild

    tmp = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-query-"))
    try:
        if not (tmp / "projections").exists():
            tmp.mkdir(parents=True, exist_ok=True)
            build_log(tmp / "log.db", args.events)
            rebuild(tmp / "log.db", tmp / "projections", with_digest=False)
        rng = random.Random(args.seed)
        with GraphReader(tmp / "projections") as reader:
            starts = []
            for type_name in ("Issue", "MergeRequest", "User", "Project"):
                starts += _sample_ids(reader, type_name, args.queries // 4, rng)
            rng.shuffle(starts)
            issues = _sample_ids(reader, "Issue", args.queries, rng)
            projects = _sample_ids(reader, "Project", max(1, args.queries // 10), rng)
            anything = _sample_any(reader, args.queries, rng)
            pairs = list(zip(issues[:200], reversed(issues[:200])))
            paths: dict[int, list] = {4: [], 6: []}
            position = reader.counts()["position"]

            def timed(fn, items):
                out = []
                for item in items:
                    t = time.perf_counter()
                    fn(item)
                    out.append(time.perf_counter() - t)
                return out

            figures = {
                "node": timed(reader.node, starts),
                "node of any type": timed(reader.node, anything),
                "neighbors (limit 100)": timed(lambda n: reader.neighbors(n, limit=100), starts),
                "neighbors of any type (limit 100)": timed(lambda n: reader.neighbors(n, limit=100),
                                                           anything),
                "neighbors of an issue": timed(lambda n: reader.neighbors(n, limit=100), issues),
                "3-hop from an issue (max 1000 nodes)": timed(
                    lambda n: reader.hops(n, 3, max_nodes=1000), issues),
                "3-hop from an issue, work edges (max 1000 nodes)": timed(
                    lambda n: reader.hops(n, 3, max_nodes=1000,
                                          edges=["AUTHORED", "ASSIGNED_TO", "HAS_LABEL", "CLOSES",
                                                 "MENTIONS", "BLOCKS", "RELATES_TO", "COMMENTED_ON"]),
                    issues),
                "3-hop from any node (max 10000 nodes)": timed(
                    lambda n: reader.hops(n, 3, max_nodes=10_000), starts[: max(50, len(starts) // 10)]),
                "shortest path issue-issue (max depth 4)": timed(
                    lambda pair: paths[4].append(reader.path(*pair, max_depth=4)), pairs),
                "shortest path issue-issue (max depth 6)": timed(
                    lambda pair: paths[6].append(reader.path(*pair, max_depth=6)), pairs),
                "find open issues of a project (50)": timed(
                    lambda p: reader.find("Issue", {"project_id": int(p.split(":")[2]),
                                                    "state": "opened"}, limit=50), projects),
                "open-issues question": timed(lambda p: questions.open_issues(reader, p, limit=50),
                                              projects),
                "closed-by question": timed(lambda i: questions.closed_by(reader, i), issues),
                "blocks question": timed(lambda i: questions.blocks(reader, i), issues),
                "counts": timed(lambda _: reader.counts(), range(50)),
            }
        print(f"events: {position} events")
        for name, samples in figures.items():
            p50, p99 = _percentiles(samples)
            print(f"{name} p50: {p50:,.0f} us")
            print(f"{name} p99: {p99:,.0f} us")
        for depth, found in paths.items():
            print(f"shortest path issue-issue (max depth {depth}) outcomes:"
                  f" {sum(p.found for p in found)} found, {sum(p.truncated for p in found)} truncated,"
                  f" {sum(not p.found and not p.truncated for p in found)} none of {len(found)}")
    finally:
        if args.data_dir is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
