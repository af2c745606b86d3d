"""Benchmark: `fleet worker` catching up a backlog, change records included.

    python bench/catchup.py [--events 200000] [--initial 2000] [--runs 1]

Starts its own nats-server on a free port in a temporary directory. Per run:
appends ``--initial`` simulated events to the log, runs ``fleet worker``
until it has built and promoted the projection version at that position,
stops it, appends ``--events`` more (the backlog: the log written with the
worker stopped, as ingest would), starts ``fleet worker`` again and times

* ``catchup_secs`` / ``catchup_events_per_sec``: worker start -> the
  projection's checkpoint at the log head (its change records are written
  in the same transactions);
* ``published_secs``: worker start -> every change record on the GRAPH
  stream;
* ``change_records``: change records the backlog produced;
* ``worker_peak_rss_mb``: the worker's peak resident set (VmHWM).

Prints ``name: value unit`` lines (medians over ``--runs``) and removes the
temporary directory. Runs against older trees too (their module layout), so
that ``farm-bench --vs`` or a worktree can pair it with the code before a change.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _util import figure

from events.codec import encode_event
from events.log import EventLog
from ops.embedded import NatsServer
from ops.simulate import simulate
from workers.natsio.client import connect

try:
    from events.logrows import Accepted
    from projections.model.ontology import VERSION
    from projections.store.graph import OUTBOX_SEQ, GraphStore
except ImportError:  # the layout before the re-cut (session 8)
    from events.log import Accepted  # type: ignore[no-redef]
    from projections.ontology import VERSION  # type: ignore[no-redef]
    from projections.store import OUTBOX_SEQ, GraphStore  # type: ignore[no-redef]

_FLEET = [sys.executable, "-c", "from ops.cli import main; main()"]
_TREE = str(Path(__file__).resolve().parent.parent)  # the worker runs this tree's code


def append(log_path: Path, events) -> int:
    head = 0
    with EventLog(log_path, sync="normal") as event_log:
        batch = []
        for e in events:
            batch.append(Accepted(e.event_id, e.__struct_config__.tag, e.source,
                                  e.occurred_at.isoformat(), encode_event(e).decode()))
            if len(batch) >= 20_000:
                head = event_log.append(batch).head
                batch = []
        if batch:
            head = event_log.append(batch).head
    return head


class Worker:
    def __init__(self, tmp: Path, env: dict[str, str]) -> None:
        self.tmp, self.env = tmp, env
        self.proc: subprocess.Popen | None = None
        self.peak_rss_mb = 0.0

    def start(self) -> None:
        out = open(self.tmp / "worker.log", "ab")
        self.proc = subprocess.Popen([*_FLEET, "worker"], env=self.env, stdout=out, stderr=out)

    def sample(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            tail = (self.tmp / "worker.log").read_text()[-2000:]
            raise SystemExit(f"fleet worker exited with {self.proc.returncode}:\n{tail}")
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_rss_mb = max(self.peak_rss_mb, int(line.split()[1]) / 1024)
        except OSError:
            pass

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Graph:
    """The projection version's checkpoint and outbox head, read as the worker writes them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = None

    def _open(self):
        if self.store is None and (self.path / "data.mdb").exists():
            try:
                self.store = GraphStore(self.path)
            except Exception:  # noqa: BLE001 - being created
                return None
        return self.store

    def checkpoint(self) -> int:
        store = self._open()
        return store.checkpoint() if store is not None else 0

    def outbox_head(self) -> int:
        store = self._open()
        if store is None:
            return 0
        with store.env.read() as txn:
            return store.meta_int(txn, OUTBOX_SEQ)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None


async def _graph_messages(url: str) -> int:
    nc = await connect(url, name="bench-catchup")
    try:
        info = await nc.jetstream().stream_info("GRAPH")
        return info.state.messages
    except Exception:  # noqa: BLE001 - not created yet
        return 0
    finally:
        await nc.close()


def wait(predicate, worker: Worker, timeout: float, what: str, every: float = 0.05) -> float:
    deadline = time.monotonic() + timeout
    while not predicate():
        worker.sample()
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(every)
    return time.perf_counter()


def one_run(tmp: Path, events: int, initial: int, timeout: float) -> dict[str, float]:
    server = NatsServer(tmp / "nats", log_file=tmp / "nats.log").start()
    data = tmp / "data"
    data.mkdir()
    env = dict(os.environ, FLEET_DATA_DIR=str(data), FLEET_NATS_URL=server.url,
               OTEL_SDK_DISABLED="true",
               PYTHONPATH=os.pathsep.join(filter(None, [_TREE, os.environ.get("PYTHONPATH")])))
    worker = Worker(tmp, env)
    graph = Graph(data / "projections" / "graph" / f"v{VERSION}")
    try:
        everything = iter(simulate(initial + events, seed=11))
        first = [next(everything) for _ in range(initial)]
        head = append(data / "log.db", first)
        worker.start()
        wait(lambda: graph.checkpoint() >= head, worker, timeout, "the first version")
        worker.stop()
        before = graph.outbox_head()
        head = append(data / "log.db", everything)
        worker.start()
        started = time.perf_counter()
        caught_up = wait(lambda: graph.checkpoint() >= head, worker, timeout, "the catch-up",
                         every=0.02)
        records = graph.outbox_head()
        published = wait(lambda: asyncio.run(_graph_messages(server.url)) >= records, worker,
                         timeout, "the change records on the GRAPH stream", every=0.2)
        worker.sample()
        secs = caught_up - started
        return {"catchup_secs": secs, "catchup_events_per_sec": events / secs,
                "published_secs": published - started, "change_records": records - before,
                "worker_peak_rss_mb": worker.peak_rss_mb}
    finally:
        worker.stop()
        graph.close()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="events in the backlog")
    parser.add_argument("--initial", type=int, default=2_000,
                        help="events the version is built from before the backlog")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=3_600, help="seconds per wait, at most")
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        tmp = Path(tempfile.mkdtemp(prefix="bench-catchup-"))
        try:
            runs.append(one_run(tmp, args.events, args.initial, args.timeout))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    units = {"catchup_secs": "s", "catchup_events_per_sec": "events/s", "published_secs": "s",
             "change_records": "records", "worker_peak_rss_mb": "MB"}
    figure("backlog_events", args.events, "events")
    for name, unit in units.items():
        figure(name, statistics.median(r[name] for r in runs), unit)


if __name__ == "__main__":
    main()
