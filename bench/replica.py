"""Benchmark: log shipping to the LOG stream and a replica's lag behind the primary.

    python bench/replica.py [--rows 50000] [--paced-events 20000] [--rate 2000] [--max-events 30000]

Starts its own nats-server on a free port in a temporary directory (one
server: the machine has two cores; a cluster adds a replication round trip
per publish). Figures:

* ``ship_rate``: rows/s a :class:`~workers.shipper.shipper.LogShipper` sends
  from a log of ``--rows`` rows to an empty LOG stream, acks included;
* ``replica_apply_rate``: rows/s a :class:`~workers.shipper.replica.LogReplica`
  appends from that stream to an empty log (chain checked, no projection);
* ``lag_<rate>_p50`` / ``_p99``: with `fleet ingest` (shipping) and
  `fleet replica` (projecting too) running, events published at ``--rate``
  per second: per row, the time from its commit on the primary
  (``recorded_at``) to its presence in the replica's log (polled every 5 ms);
* ``lag_max_p50`` / ``_p99`` and ``max_end_to_end_rate``: the same with
  ``--max-events`` published as fast as they are acked; the rate is events
  per second from the first publish to the last row in the replica's log.

Prints ``name: value unit`` lines and removes the temporary directory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

from _util import figure, percentile

from events.log import EventLog
from events.logrows import Accepted
from ops.embedded import NatsServer
from ops.settings import load_settings
from ops.simulate import simulate
from ops.wiring import replica_config, sdlc_stream, ship_config
from workers.natsio.client import connect
from workers.natsio.publish import publish_events
from workers.natsio.streams import ensure_stream
from workers.shipper.replica import LogReplica
from workers.shipper.shipper import LogShipper

_FLEET = [sys.executable, "-c", "from ops.cli import main; main()"]
_TREE = str(Path(__file__).resolve().parent.parent)


def _settings(server: NatsServer, data_dir: Path, **extra):
    return load_settings({}, data_dir=data_dir, nats_url=server.url, embedded_nats=False, **extra)


def _append(path: Path, events) -> None:
    with EventLog(path, sync="normal") as event_log:
        rows = [Accepted(e.event_id, e.__struct_config__.tag, e.source, e.occurred_at.isoformat(),
                         encode(e).decode()) for e in events]
        for i in range(0, len(rows), 5000):
            event_log.append(rows[i:i + 5000])


def encode(event) -> bytes:
    from events.codec import encode_event
    return encode_event(event)


async def ship_and_apply(server: NatsServer, root: Path, rows: int) -> tuple[float, float]:
    """Rows/s shipped from a full log, then rows/s appended by a replica from the stream."""
    primary = _settings(server, root / "ship-primary", log_stream="LOG_SHIP")
    replica = _settings(server, root / "ship-replica", log_stream="LOG_SHIP")
    _append(primary.log_path, simulate(rows, seed=31))
    nc = await connect(primary.nats_url, name="bench-ship")
    shipper = LogShipper(nc, primary.log_path, ship_config(primary))
    await shipper.setup()
    started = time.perf_counter()
    while await shipper.ship_once():
        pass
    ship_rate = shipper.shipped / (time.perf_counter() - started)
    follower = LogReplica(nc, replica.log_path, replica_config(replica))
    started = time.perf_counter()
    await follower.setup()
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    while follower.stats.position < rows:
        await asyncio.sleep(0.005)
    apply_rate = rows / (time.perf_counter() - started)
    stop.set()
    await task
    await nc.drain()
    return ship_rate, apply_rate


class Watcher(threading.Thread):
    """Polls the replica's log; per new row, now - its recorded_at (the primary's commit)."""

    def __init__(self, log_path: Path, total: int) -> None:
        super().__init__(daemon=True)
        self.log_path, self.total = log_path, total
        self.lags_ms: list[float] = []
        self.last_at = 0.0

    def run(self) -> None:
        while not self.log_path.exists():
            time.sleep(0.005)
        conn = sqlite3.connect(f"file:{self.log_path}?mode=ro", uri=True)
        seen = 0
        deadline = time.monotonic() + 300
        while seen < self.total and time.monotonic() < deadline:
            try:
                rows = conn.execute("SELECT position, recorded_at FROM events WHERE position > ?"
                                    " ORDER BY position", (seen,)).fetchall()
            except sqlite3.OperationalError:  # not created yet
                rows = []
            now = time.time()
            for position, recorded_at in rows:
                self.lags_ms.append((now - datetime.fromisoformat(recorded_at).timestamp()) * 1000)
                seen = position
            if rows:
                self.last_at = time.perf_counter()
            time.sleep(0.005)
        conn.close()


async def _until_following(nc, settings, timeout_secs: float = 60) -> None:
    """Wait until ingest's consumer is on SDLC and the replica's on LOG (both processes up)."""
    js = nc.jetstream()
    deadline = time.monotonic() + timeout_secs
    while time.monotonic() < deadline:
        try:
            await js.consumer_info(settings.stream, settings.ingest_durable)
            if (await js.stream_info(settings.log_stream)).state.consumer_count:
                return
        except Exception:  # noqa: BLE001 - not created yet
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("fleet ingest or fleet replica did not start")


def paced_run(server: NatsServer, root: Path, name: str, events: int, rate: float
              ) -> tuple[list[float], float]:
    """`fleet ingest` + `fleet replica` while ``events`` are published at ``rate`` (0: unpaced)."""
    primary = _settings(server, root / f"{name}-primary", log_stream=f"LOG_{name}", stream=f"SDLC_{name}",
                        subject_prefix=f"sdlc{name}")
    replica = root / f"{name}-replica"
    env = {**os.environ, "PYTHONPATH": _TREE, "FLEET_NATS_URL": primary.nats_url,
           "FLEET_EMBEDDED_NATS": "false", "FLEET_STREAM": primary.stream,
           "FLEET_SUBJECT_PREFIX": primary.subject_prefix, "FLEET_LOG_STREAM": primary.log_stream,
           "FLEET_LOG_SHIPPING": "true"}
    processes = [
        subprocess.Popen([*_FLEET, "ingest"], env={**env, "FLEET_DATA_DIR": str(primary.data_dir)},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([*_FLEET, "replica"], env={**env, "FLEET_DATA_DIR": str(replica)},
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
    ]
    watcher = Watcher(replica / "log.db", events)
    try:
        watcher.start()

        async def publish() -> float:
            nc = await connect(primary.nats_url, name="bench-producer")
            await ensure_stream(nc.jetstream(), sdlc_stream(primary))
            await _until_following(nc, primary)
            started = time.perf_counter()
            await publish_events(nc, simulate(events, seed=32), prefix=primary.subject_prefix, rate=rate)
            await nc.drain()
            return started

        started = asyncio.run(publish())
        watcher.join(300)
        elapsed = watcher.last_at - started
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
    return watcher.lags_ms, events / elapsed if elapsed > 0 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--paced-events", type=int, default=20_000)
    parser.add_argument("--rate", type=float, default=2000)
    parser.add_argument("--max-events", type=int, default=30_000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-replica-"))
    server = NatsServer(root / "nats", log_file=root / "nats.log").start()
    try:
        ship_rate, apply_rate = asyncio.run(ship_and_apply(server, root, args.rows))
        figure("ship_rate", ship_rate, "rows/s")
        figure("replica_apply_rate", apply_rate, "rows/s")
        lags, _ = paced_run(server, root, "paced", args.paced_events, args.rate)
        rate = int(args.rate)
        figure(f"lag_{rate}_p50", percentile(lags, 50), "ms")
        figure(f"lag_{rate}_p99", percentile(lags, 99), "ms")
        lags, end_to_end = paced_run(server, root, "max", args.max_events, 0)
        figure("lag_max_p50", percentile(lags, 50), "ms")
        figure("lag_max_p99", percentile(lags, 99), "ms")
        figure("max_end_to_end_rate", end_to_end, "events/s")
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
