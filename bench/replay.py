"""Benchmark: rebuild and live-apply throughput of the graph projection, peak RSS.

    python bench/replay.py [--events 100000] [--runs 3] [--workers N]

Builds a log of simulated events in a temporary data dir (appending directly
with EventLog, no NATS), then measures, each phase in a fresh subprocess so
peak RSS is that phase's own:

* the log's scan + decode rate (the ceiling any replay works under);
* a full rebuild (bulk phase events/s, total seconds incl. digest and promotion);
* live apply (the projector's path: precise, outbox records) events/s;
* peak RSS of the rebuild (its process, and any children it started).

Prints one ``name: value unit`` line per figure (medians over ``--runs``,
with the range when there are several), the load average before and after,
and removes the temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))



def build_log(log_path: Path, n: int) -> float:
    from events.codec import encode_event
    from events.log import EventLog
    from events.logrows import Accepted
    from ops.simulate import simulate

    started = time.perf_counter()
    with EventLog(log_path, sync="normal") as event_log:
        batch = []
        for e in simulate(n):
            batch.append(Accepted(e.event_id, e.__struct_config__.tag, e.source,
                                  e.occurred_at.isoformat(), encode_event(e).decode()))
            if len(batch) >= 20_000:
                event_log.append(batch)
                batch = []
        if batch:
            event_log.append(batch)
    return time.perf_counter() - started


def _rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def phase_scan(log_path: Path) -> dict:
    import gc

    from events.codec import decode_event
    from events.log import EventLog

    gc.disable()
    started = time.perf_counter()
    n = 0
    with EventLog(log_path, readonly=True) as event_log:
        for rows in event_log.read_payloads(1, batch_size=20_000):
            for _, payload in rows:
                decode_event(payload)
            n += len(rows)
    return {"events_per_sec": n / (time.perf_counter() - started)}


def phase_rebuild(log_path: Path, proj: Path, budget_mb: int) -> dict:
    from projections.versions.rebuild import rebuild

    shutil.rmtree(proj, ignore_errors=True)
    result = rebuild(log_path, proj, budget_bytes=budget_mb << 20)
    own, children = _rss_mb()
    size = (proj / "graph" / f"v{result.version}" / "data.mdb").stat().st_size
    return {"bulk_events_per_sec": result.bulk_events_per_sec, "total_secs": result.total_secs,
            "rss_main_mb": own, "rss_children_mb": children, "db_mb": size / 1e6}


def phase_live(log_path: Path, proj: Path, batch: int, limit: int) -> dict:
    # The collector stays on, as in the projector (its batches pause it themselves).
    from events.log import EventLog
    from projections.fold.applier import Applier, plan_rows
    from projections.store.graph import GraphStore

    shutil.rmtree(proj, ignore_errors=True)
    n = 0
    with GraphStore(proj / "live", create=True) as store, EventLog(log_path, readonly=True) as event_log:
        applier = Applier(store, precise=True, strict=False, outbox=True)
        started = time.perf_counter()
        for rows in event_log.read_payloads(1, batch_size=batch, to_position=limit):
            applier.apply(plan_rows(rows))
            n += len(rows)
        elapsed = time.perf_counter() - started
    own, _ = _rss_mb()
    return {"events_per_sec": n / elapsed, "events": n, "rss_mb": own}


def _child(phase: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", phase, *args],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--budget-mb", type=int, default=512,
                        help="the fold's memory budget (FLEET_FOLD_BUDGET_MB)")
    parser.add_argument("--live-batch", type=int, default=10_000)
    parser.add_argument("--live-events", type=int, default=200_000,
                        help="apply at most this many events in the live phase")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    parser.add_argument("--proj", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        log_path, proj = Path(args.log), Path(args.proj)
        if args.phase == "scan":
            result = phase_scan(log_path)
        elif args.phase == "rebuild":
            result = phase_rebuild(log_path, proj, args.budget_mb)
        else:
            result = phase_live(log_path, proj, args.live_batch, args.live_events)
        print(json.dumps(result))
        return

    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="bench-replay-"))
    try:
        log_path, proj = tmp / "log.db", tmp / "projections"
        build_secs = build_log(log_path, args.events)
        common = ["--log", str(log_path), "--proj", str(proj)]
        scans = [_child("scan", *common) for _ in range(args.runs)]
        rebuilds = [_child("rebuild", *common, "--budget-mb", str(args.budget_mb))
                    for _ in range(args.runs)]
        lives = [_child("live", *common, "--live-batch", str(args.live_batch),
                        "--live-events", str(args.live_events)) for _ in range(args.runs)]

        def med(rows, key, fmt):
            values = [r[key] for r in rows]
            text = format(statistics.median(values), fmt)
            if len(values) > 1:
                text += f" ({format(min(values), fmt)}-{format(max(values), fmt)})"
            return text

        print(f"events: {args.events} events")
        print(f"log build: {build_secs:.1f} s")
        print(f"log scan+decode: {med(scans, 'events_per_sec', ',.0f')} events/s")
        print(f"rebuild bulk: {med(rebuilds, 'bulk_events_per_sec', ',.0f')} events/s")
        print(f"rebuild total: {med(rebuilds, 'total_secs', '.2f')} s")
        print(f"rebuild peak RSS main: {med(rebuilds, 'rss_main_mb', '.0f')} MB")
        print(f"rebuild peak RSS children: {med(rebuilds, 'rss_children_mb', '.0f')} MB")
        print(f"projection size: {med(rebuilds, 'db_mb', '.0f')} MB")
        print(f"live apply: {med(lives, 'events_per_sec', ',.0f')} events/s")
        print(f"live apply peak RSS: {med(lives, 'rss_mb', '.0f')} MB")
        print(f"cpus: {os.cpu_count()} cpus")
        load_after = os.getloadavg()
        print(f"load average: {load_before[0]:.2f} before, {load_after[0]:.2f} after"
              f" (1-minute; 5-minute {load_after[1]:.2f})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
