"""Benchmark: the fold engine against the overlay's bulk apply, on the same log, in the same run.

    python bench/fold.py [--events 200000] [--runs 1] [--budget-mb 512]

Builds a log of simulated events in a temporary directory, then runs, each in
a fresh subprocess so that peak RSS is that run's own:

* the overlay: the Applier over mutation tuples in 10,000-event batches, as
  rebuilds ran before the engine (and live apply still runs), planned in-process;
* ``fold_log`` into an empty store with the given memory budget: events/s,
  per-stage µs/event (read, decode, fold, write), segments, peak state estimate.

Checks that both stores have the same digest, prints one ``name: value unit``
line per figure (medians over ``--runs``), and removes the temporary directory.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _util import figure


def _rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def _cpu() -> float:
    """CPU seconds of this process and of its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def phase_overlay(log_path: Path, out: Path) -> dict:
    from events.log import EventLog
    from projections.fold.applier import Applier, plan_rows
    from projections.store.graph import GraphStore

    shutil.rmtree(out, ignore_errors=True)
    started, cpu = time.perf_counter(), _cpu()
    with GraphStore(out, create=True) as store, \
            EventLog(log_path, readonly=True, cache_kib=8192) as event_log:
        applier = Applier(store, precise=False, strict=False, outbox=False, release_pages=True)
        for rows in event_log.read_payloads(1, batch_size=10_000):
            applier.apply(plan_rows(rows))
        events = store.checkpoint()
    secs = time.perf_counter() - started
    cpu = _cpu() - cpu
    own, _ = _rss_mb()
    return {"events": events, "events_per_sec": events / secs, "secs": secs, "cpu_secs": cpu,
            "rss_mb": own, "store": str(out)}


def phase_fold(log_path: Path, out: Path, budget_bytes: int) -> dict:
    from projections.fold.engine import fold_log
    from projections.store.graph import GraphStore

    shutil.rmtree(out, ignore_errors=True)
    with GraphStore(out, create=True) as store:
        started, cpu = time.perf_counter(), _cpu()
        result = fold_log(store, log_path, budget_bytes=budget_bytes)
        secs = time.perf_counter() - started
        cpu = _cpu() - cpu
    own, _ = _rss_mb()
    t = result.times
    per = 1e6 / max(1, result.position)
    return {"events": result.position, "events_per_sec": result.position / secs, "secs": secs,
            "cpu_secs": cpu, "rss_mb": own, "segments": result.segments,
            "peak_state_mb": result.peak_state_bytes / 1e6, "read_us": t.read * per,
            "decode_us": t.decode * per, "fold_us": t.fold * per, "write_us": t.write * per,
            "store": str(out)}


def _child(phase: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--phase", phase, *args],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _digest(path: str) -> str:
    from projections.store.graph import GraphStore
    from projections.versions.digest import digest

    with GraphStore(path) as store:
        return digest(store).hexdigest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--budget-mb", type=float, default=512, help="the fold's memory budget")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--log", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    budget = int(args.budget_mb * (1 << 20))

    if args.phase:
        log_path, out = Path(args.log), Path(args.out)
        result = (phase_overlay(log_path, out) if args.phase == "overlay"
                  else phase_fold(log_path, out, budget))
        print(json.dumps(result))
        return

    from replay import build_log

    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="bench-fold-"))
    try:
        log_path = tmp / "log.db"
        build_secs = build_log(log_path, args.events)
        olds, news = [], []
        for run in range(args.runs):  # interleaved: both see the same machine load
            olds.append(_child("overlay", "--log", str(log_path), "--out", str(tmp / f"old{run}")))
            news.append(_child("fold", "--log", str(log_path), "--out", str(tmp / f"new{run}"),
                               "--budget-mb", str(args.budget_mb)))
        old_digest, new_digest = _digest(olds[-1]["store"]), _digest(news[-1]["store"])

        def med(rows: list[dict], key: str) -> float:
            return float(statistics.median(r[key] for r in rows))

        old_rate, new_rate = med(olds, "events_per_sec"), med(news, "events_per_sec")
        figure("events", args.events, "events")
        figure("runs", args.runs, "runs")
        figure("log build", build_secs, "s")
        figure("overlay", old_rate, "events/s")
        figure("overlay CPU", med(olds, "cpu_secs") * 1e6 / args.events, "us/event")
        figure("overlay peak RSS", med(olds, "rss_mb"), "MB")
        figure("fold engine", new_rate, "events/s")
        figure("fold engine CPU", med(news, "cpu_secs") * 1e6 / args.events, "us/event")
        figure("ratio", new_rate / old_rate, "x")
        figure("fold stage read", med(news, "read_us"), "us/event")
        figure("fold stage decode", med(news, "decode_us"), "us/event")
        figure("fold stage read+decode", med(news, "read_us") + med(news, "decode_us"), "us/event")
        figure("fold stage fold", med(news, "fold_us"), "us/event")
        figure("fold stage write", med(news, "write_us"), "us/event")
        figure("fold segments", med(news, "segments"), "segments")
        figure("fold budget", args.budget_mb, "MB")
        figure("fold peak state estimate", med(news, "peak_state_mb"), "MB")
        figure("fold peak RSS", med(news, "rss_mb"), "MB")
        figure("digests equal", int(old_digest == new_digest), "bool")
        figure("cpus", os.cpu_count() or 0, "cpus")
        load_after = os.getloadavg()
        figure("load average before", load_before[0], "1-min")
        figure("load average after", load_after[0], "1-min")
        if old_digest != new_digest:
            print(f"DIGEST MISMATCH: overlay {old_digest} fold {new_digest}", file=sys.stderr)
            sys.exit(1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
