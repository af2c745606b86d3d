"""Change-stream benchmark: source event -> graph-change event, through the real path.

    python bench/changes.py [--rate 2000] [--secs 20] [--burst 60000] [--runs 3]
                            [--layout worker|processes] [--trace FILE]

Starts its own nats-server on a free port in a temporary directory and the
fleet's processes as in production: ``fleet ingest`` (SDLC -> log), the
projector (log -> LMDB + outbox) and the change publisher (outbox -> GRAPH).
This process publishes simulated canonical events to the SDLC stream; a
subscriber process follows the GRAPH stream with an ordered JetStream
consumer and notes when it first sees each ``event_id`` (both use the host's
wall clock). Per run:

* ``latency_p50`` / ``latency_p99``: publishing a source event -> the
  subscriber receiving the first graph-change event caused by it, at
  ``--rate`` events/s sustained for ``--secs`` seconds (the first 2 seconds
  are warm-up and not counted);
* ``change_rate_at_rate``: graph-change events/s received during that phase;
* ``pipeline_change_throughput``: changes/s received while ``--burst / 2``
  source events are published unpaced (every stage busy: the slowest sets it);
* ``publisher_change_throughput``: changes/s when the publisher starts
  against an outbox backlog of another ``--burst / 2`` events (publisher +
  JetStream + subscriber alone: the highest sustained change throughput);
* ``cpu_<process>``: CPU time (user + system, children included) per source
  event during the sustained phase. On a shared machine the latencies depend
  on the CPU left over; these figures do not;
* ``stage_<stage>_p50`` / ``_p99``: where the latency goes, per source event
  of the sustained phase: ``ingest`` (published -> the log row's
  ``recorded_at``: when ingest received the first event of its batch), ``project`` (-> a probe
  process, polling the checkpoint every millisecond, sees it applied),
  ``publish`` (-> the GRAPH stream stored its first change, JetStream's own
  timestamp) and ``deliver`` (-> the subscriber received it).

Layouts: ``worker`` (default) runs ``fleet worker`` as in production: the
ingest worker's ``fleet.log.appended`` notification wakes its projector, the
projector wakes its publisher in-process after each commit, and both poll at
their default intervals. ``processes`` runs ``fleet project --poll-ms 5`` and
``fleet changes publish --poll-ms 5`` separately (the projector is also
woken by ingest's ``fleet.log.appended``; nothing notifies the publisher
across processes, so it polls). Prints ``name: value unit`` lines, medians
over ``--runs``, and removes the temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import msgspec
from _util import figure, percentile

from events.log import EventLog
from ops.embedded import NatsServer
from ops.simulate import simulate
from projections.model.ontology import VERSION
from projections.store.graph import OUTBOX_SEQ, GraphStore
from projections.versions.catalog import Versions
from projections.versions.lanes import read_watermark
from workers.natsio.client import connect
from workers.natsio.publish import publish_events
from workers.natsio.streams import StreamSpec, ensure_stream

_FLEET = [sys.executable, "-c", "from ops.cli import main; main()"]
_SELF = [sys.executable, str(Path(__file__).resolve()), "--role"]


# -- the roles run in child processes ------------------------------------------------


def run_probe(version_dir: Path, out: Path) -> None:
    """Note when the projection's checkpoint moves (polled every ms) until SIGTERM; then write
    the ``[time, checkpoint]`` pairs to ``out``."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    marks: list[tuple[float, int]] = []
    store = None
    while store is None and not stop.is_set():
        try:
            store = GraphStore(version_dir)
        except Exception:  # noqa: BLE001 - not built yet
            stop.wait(0.05)
    while not stop.is_set():
        checkpoint = store.checkpoint()
        if not marks or checkpoint != marks[-1][1]:
            marks.append((time.time(), checkpoint))
        time.sleep(0.001)
    if store is not None:
        store.close()
    out.write_text(json.dumps(marks))


class _Cause(msgspec.Struct):
    event_id: str | None = None


def run_subscriber(out: Path) -> None:
    """Follow the GRAPH stream; write the count as it goes and every receipt at SIGTERM."""
    from ops.runner import run_until_signal

    decode = msgspec.json.Decoder(_Cause).decode
    first_seen: dict[str, float] = {}
    stored: dict[str, float] = {}
    times: list[float] = []

    async def on_msg(msg) -> None:
        now = time.time()
        times.append(now)
        event_id = decode(msg.data).event_id
        if event_id is not None and event_id not in first_seen:
            first_seen[event_id] = now
            stored[event_id] = msg.metadata.timestamp.timestamp()

    async def main(stop: asyncio.Event) -> None:
        nc = await connect(os.environ["FLEET_NATS_URL"], name="bench-subscriber")
        js = nc.jetstream()
        while True:
            try:
                await js.stream_info("GRAPH")
                break
            except Exception:  # noqa: BLE001 - the publisher creates it
                await asyncio.sleep(0.05)
        await js.subscribe("graph.graph.>", cb=on_msg, ordered_consumer=True, stream="GRAPH")
        count_file = out.with_suffix(".count")
        while not stop.is_set():
            count_file.write_text(str(len(times)))
            try:
                await asyncio.wait_for(stop.wait(), 0.05)
            except asyncio.TimeoutError:
                pass
        await nc.close()
        out.write_text(json.dumps({"first_seen": first_seen, "stored": stored, "times": times}))

    run_until_signal(main)


# -- the harness ---------------------------------------------------------------------


class Fleet:
    """Child processes on one data directory; their output goes to ``tmp/logs``."""

    def __init__(self, tmp: Path, nats_url: str) -> None:
        self.tmp = tmp
        self.env = dict(os.environ, FLEET_DATA_DIR=str(tmp / "data"), FLEET_NATS_URL=nats_url,
                        OTEL_SDK_DISABLED="true")
        self.procs: dict[str, subprocess.Popen] = {}
        self._graph: GraphStore | None = None
        (tmp / "logs").mkdir(exist_ok=True)

    def start(self, name: str, *args: str, command: list[str] = _FLEET) -> None:
        log = open(self.tmp / "logs" / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen([*command, *args], env=self.env, stdout=log, stderr=log)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        if self._graph is not None:
            self._graph.close()
            self._graph = None

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                tail = (self.tmp / "logs" / f"{name}.log").read_text()[-2000:]
                raise SystemExit(f"{name} exited with {proc.returncode}:\n{tail}")

    @property
    def version_dir(self) -> Path:
        return Versions(self.tmp / "data" / "projections").path(VERSION)

    def _store(self) -> GraphStore | None:
        # Kept open: opening an environment takes LMDB's writer lock for a moment.
        if self._graph is None:
            try:
                self._graph = GraphStore(self.version_dir)
            except Exception:  # noqa: BLE001 - not built yet
                return None
        return self._graph

    def checkpoint(self) -> int:
        """The log position the projection has applied."""
        store = self._store()
        return store.checkpoint() if store is not None else 0

    def outbox_head(self) -> int:
        store = self._store()
        if store is None:
            return 0
        with store.env.read() as txn:
            return store.meta_int(txn, OUTBOX_SEQ)

    def received(self) -> int:
        try:
            return int((self.tmp / "sub.count").read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0


def _cpu_secs(pid: int, *, tree: bool = True) -> float:
    """CPU seconds (user + system) of ``pid`` and (with ``tree``) its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            total += (int(stats[p][11]) + int(stats[p][12])) / tick
        if tree:
            todo.extend(children.get(p, []))
    return total


async def wait_until(predicate, timeout: float, fleet: Fleet, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        fleet.check()
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def _log_ready(path: Path) -> bool:
    try:
        with EventLog(path, readonly=True) as event_log:
            return event_log.head >= 0
    except Exception:  # noqa: BLE001 - not created yet
        return False


async def one_run(tmp: Path, rate: float, secs: float, burst: int, layout: str,
                  trace: Path | None = None) -> dict[str, float]:
    server = NatsServer(tmp / "nats", log_file=tmp / "nats.log").start()
    fleet = Fleet(tmp, server.url)
    nc = await connect(server.url, name="bench")
    results: dict[str, float] = {}
    try:
        await ensure_stream(nc.jetstream(), StreamSpec(name="SDLC", subjects=("sdlc.>",)))
        fleet.start("ingest", "ingest")
        # The projector needs the log's tables: start it once ingest created them.
        await wait_until(lambda: _log_ready(tmp / "data" / "log.db"), 30, fleet, "the log")
        if layout == "worker":
            fleet.start("worker", "worker")
        else:
            fleet.start("project", "project", "--poll-ms", "5")
            fleet.start("changes", "changes", "publish", "--poll-ms", "5")
        fleet.start("subscriber", "subscriber", str(tmp / "sub.json"), command=_SELF)
        await wait_until(lambda: fleet.received() >= 1, 60, fleet, "v1's rebuilt notice")
        fleet.start("probe", "probe", str(fleet.version_dir), str(tmp / "probe.json"), command=_SELF)
        events = list(simulate(int(rate * secs) + burst, seed=42))
        n_events, half = int(rate * secs), burst // 2
        sent: dict[str, float] = {}
        target = 0

        def paced(items):
            for event in items:
                sent[event.event_id] = time.time()
                yield event

        def delivered() -> bool:
            if fleet.checkpoint() < target:
                return False
            head = fleet.outbox_head()
            return read_watermark(fleet.version_dir) == head and fleet.received() >= head

        # Phase 1: sustained rate.
        pids = {name: proc.pid for name, proc in fleet.procs.items()}
        pids |= {"nats-server": server.process.pid}
        cpu_before = {name: _cpu_secs(pid) for name, pid in pids.items()}
        cpu_before["producer"] = _cpu_secs(os.getpid(), tree=False)
        started = time.time()
        await publish_events(nc, paced(events[:n_events]), rate=rate)
        phase1_end = time.time()
        cpu = {name: _cpu_secs(pid) - cpu_before[name] for name, pid in pids.items()}
        cpu["producer"] = _cpu_secs(os.getpid(), tree=False) - cpu_before["producer"]
        target = n_events
        await wait_until(delivered, 300, fleet, "the sustained phase to be delivered")
        fleet.stop("probe")

        # Phase 2: an unpaced burst with every stage running.
        phase2_start = time.time()
        await publish_events(nc, events[n_events:n_events + half])
        target = n_events + half
        await wait_until(delivered, 300, fleet, "the burst to be delivered")
        phase2_count = fleet.received()

        # Phase 3: the publisher alone against an outbox backlog.
        if layout == "worker":
            fleet.stop("worker")
            fleet.start("project", "project", "--poll-ms", "5")
        else:
            fleet.stop("changes")
        await publish_events(nc, events[n_events + half:])
        target = len(events)
        await wait_until(lambda: fleet.checkpoint() >= target, 300, fleet, "the backlog projected")
        fleet.stop("project")
        backlog = fleet.outbox_head() - read_watermark(fleet.version_dir)
        phase3_start = time.time()
        fleet.start("changes", "changes", "publish")
        await wait_until(delivered, 300, fleet, "the backlog to drain")
        fleet.stop("subscriber")
        data = json.loads((tmp / "sub.json").read_text())
    finally:
        await nc.close()
        fleet.stop_all()
        server.stop()

    first_seen, times = data["first_seen"], data["times"]
    warm = started + 2.0
    latencies = [(first_seen[e.event_id] - sent[e.event_id]) * 1000 for e in events[:n_events]
                 if e.event_id in first_seen and sent[e.event_id] >= warm]
    results["events_per_sec_offered"] = n_events / (phase1_end - started)
    results["latency_p50"] = percentile(latencies, 50)
    results["latency_p99"] = percentile(latencies, 99)
    results["latency_max"] = max(latencies)
    results["events_with_changes"] = len(latencies)
    results["change_rate_at_rate"] = (sum(1 for t in times if warm <= t <= phase1_end)
                                      / (phase1_end - warm))
    burst_times = times[:phase2_count]
    received = sum(1 for t in burst_times if t >= phase2_start)
    results["pipeline_change_throughput"] = received / (burst_times[-1] - phase2_start)
    results["publisher_change_throughput"] = backlog / (times[-1] - phase3_start)
    results["backlog_changes"] = backlog
    results |= _breakdown(tmp, [e.event_id for e in events[:n_events] if sent[e.event_id] >= warm],
                          sent, data, json.loads((tmp / "probe.json").read_text()), trace)
    for name, secs_used in cpu.items():
        results[f"cpu_{name}"] = secs_used / n_events * 1e6
    return results


def _breakdown(tmp: Path, event_ids: list[str], sent: dict[str, float], data: dict,
               marks: list[list[float]], trace: Path | None) -> dict[str, float]:
    """Median and p99 of each stage: sent -> logged -> applied -> stored in GRAPH -> received.

    With ``trace``, one CSV row per event is appended there: when it was sent
    (Unix time, to line up with system metrics) and each stage's milliseconds,
    to see when a tail happens and in which stage.

    ``logged`` is the log row's ``recorded_at`` (its batch's first arrival in ingest),
    ``applied`` the first checkpoint probe at or past the event's position (1 ms
    resolution), ``stored`` the GRAPH stream's timestamp of the event's first change.
    """
    with EventLog(tmp / "data" / "log.db", readonly=True) as event_log:
        rows = {event_id: (position, datetime.fromisoformat(recorded.replace("Z", "+00:00")).timestamp())
                for position, event_id, recorded in event_log.db.execute(
                    "SELECT position, event_id, recorded_at FROM events")}
    times = [t for t, _ in marks]
    checkpoints = [int(c) for _, c in marks]
    stages: dict[str, list[float]] = {"ingest": [], "project": [], "publish": [], "deliver": []}
    rows_out = []
    for event_id in event_ids:
        if event_id not in data["first_seen"] or event_id not in rows:
            continue
        position, logged = rows[event_id]
        i = bisect.bisect_left(checkpoints, position)
        if i == len(checkpoints):
            continue
        applied, stored = times[i], data["stored"][event_id]
        stages["ingest"].append(logged - sent[event_id])
        stages["project"].append(applied - logged)
        stages["publish"].append(stored - applied)
        stages["deliver"].append(data["first_seen"][event_id] - stored)
        if trace is not None:
            rows_out.append(f"{sent[event_id]:.4f}," + ",".join(
                f"{stages[s][-1] * 1000:.2f}" for s in stages))
    if trace is not None:
        new = not trace.exists()
        with open(trace, "a") as f:
            f.write(("sent_unix_s,ingest_ms,project_ms,publish_ms,deliver_ms\n" if new else "")
                    + "\n".join(rows_out) + "\n")
    out = {}
    for stage, values in stages.items():
        out[f"stage_{stage}_p50"] = percentile([v * 1000 for v in values], 50)
        out[f"stage_{stage}_p99"] = percentile([v * 1000 for v in values], 99)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--secs", type=float, default=20)
    parser.add_argument("--burst", type=int, default=60_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--trace", type=Path, help="append per-event stage times (CSV) to this file")
    parser.add_argument("--layout", choices=["worker", "processes"], default="worker")
    parser.add_argument("--role", choices=["subscriber", "probe"], help=argparse.SUPPRESS)
    parser.add_argument("role_args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.secs <= 2:
        parser.error("--secs must be more than 2: the first 2 s are warm-up and not measured")
    if args.role == "subscriber":
        run_subscriber(Path(args.role_args[0]))
        return
    if args.role == "probe":
        run_probe(Path(args.role_args[0]), Path(args.role_args[1]))
        return
    runs = []
    for _ in range(args.runs):
        tmp = Path(tempfile.mkdtemp(prefix="bench-changes-"))
        try:
            runs.append(asyncio.run(one_run(tmp, args.rate, args.secs, args.burst, args.layout,
                                            args.trace)))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    units = {"latency_p50": "ms", "latency_p99": "ms", "latency_max": "ms",
             "events_per_sec_offered": "events/s", "events_with_changes": "events",
             "change_rate_at_rate": "changes/s", "pipeline_change_throughput": "changes/s",
             "publisher_change_throughput": "changes/s", "backlog_changes": "changes"}
    units |= {name: "us/event" for name in runs[0] if name.startswith("cpu_")}
    units |= {name: "ms" for name in runs[0] if name.startswith("stage_")}
    for name, unit in units.items():
        figure(name, statistics.median(r[name] for r in runs), unit)
    figure("runs", len(runs), "runs")
    print(f"layout: {args.layout}", flush=True)


if __name__ == "__main__":
    main()
