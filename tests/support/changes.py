"""Graph changes end to end: a projected log, the change publisher, the GRAPH stream, and the
downstream example (examples/downstream_copy.py) that copies the graph from it."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import msgspec

from events.log import EventLog
from ops.simulate import simulate
from ops.wiring import change_publisher
from projections.changes.contract import decode_change
from projections.model.ontology import VERSION
from projections.read.export import export
from projections.store.graph import GraphStore
from projections.versions.catalog import Versions
from projections.versions.rebuild import rebuild
from tests.support.cli import settings_env
from tests.support.paths import ROOT
from tests.support.projection import accepted
from workers.natsio.client import connect
from workers.projector.loop import Projector, ProjectorConfig

EXAMPLE = ROOT / "examples" / "downstream_copy.py"


def load_example():
    """The downstream example as a module (it is a script, not a package)."""
    spec = importlib.util.spec_from_file_location("downstream_copy", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def graph_settings(settings, **extra):
    """``settings`` with a GRAPH stream and subject prefix unique to the test."""
    tag = settings.stream.split("_", 1)[1]
    return settings.with_overrides(graph_stream=f"GRAPH_{tag}", graph_subject_prefix=f"graph{tag}",
                                   **extra)


def graph_env(s, **extra: str) -> dict[str, str]:
    """The environment of a ``fleet`` child process that uses the test's GRAPH stream."""
    return settings_env(s, FLEET_GRAPH_STREAM=s.graph_stream,
                        FLEET_GRAPH_SUBJECT_PREFIX=s.graph_subject_prefix, **extra)


def projected(settings, n: int, **overrides):
    """Test settings with v1 promoted and ``n`` simulated events applied live; (settings, v1 dir)."""
    s = graph_settings(settings, **overrides)
    start_projection(s)
    append_events(s, workload(n))
    project(s)
    return s, Versions(s.projections_dir).path(VERSION)


def start_projection(settings) -> None:
    """An empty log and v1 promoted at position 0, so every event is applied live (with outbox)."""
    EventLog(settings.log_path).close()
    rebuild(settings.log_path, settings.projections_dir)


def append_events(settings, events, *, traced: set[int] = frozenset()) -> int:
    """Append events; those whose index is in ``traced`` carry a traceparent. Returns the head."""
    rows = [accepted(e) if i not in traced else accepted(e)._replace(traceparent=traceparent(i))
            for i, e in enumerate(events)]
    with EventLog(settings.log_path, sync="normal") as event_log:
        return event_log.append(rows).head


def traceparent(i: int) -> str:
    """A W3C trace context, distinct per ``i``."""
    return f"00-{i + 1:032x}-{i + 1:016x}-01"


def workload(n: int, *, seed: int = 7, start: int = 0) -> list:
    """Events ``start .. n-1`` of a simulated organisation."""
    return list(simulate(n, seed=seed))[start:]


def project(settings, *, batch_max: int = 400) -> None:
    """Run the projector until the active version reached the log head."""
    projector = Projector(settings.log_path, settings.projections_dir,
                          ProjectorConfig(batch_max=batch_max, poll_interval_ms=20))
    stats = asyncio.run(asyncio.wait_for(projector.run(asyncio.Event(), until_caught_up=True), 60))
    assert stats.rebuild_error is None and stats.poisoned == 0


async def publish_all(nc, settings, **kwargs):
    """Run a change publisher until nothing publishable is left; its stats."""
    publisher = change_publisher(nc, settings, **kwargs)
    return await asyncio.wait_for(publisher.run(asyncio.Event(), until_drained=True), 60)


def publish_and_read(settings, **kwargs) -> tuple:
    """Publish until drained over a connection of its own, then read the GRAPH stream:
    (the publisher's stats, every message as :func:`read_stream` gives them)."""
    async def main():
        nc = await connect(settings.nats_url, name="test-publish")
        try:
            stats = await publish_all(nc, settings, **kwargs)
            return stats, await read_stream(nc, settings)
        finally:
            await nc.close()

    return asyncio.run(main())


async def read_stream(nc, settings, *, projection: str = "graph") -> list[tuple[int, dict, dict]]:
    """Every message of the projection on the GRAPH stream: (stream seq, headers, change)."""
    js = nc.jetstream()
    subject = f"{settings.graph_subject_prefix}.{projection}.>"
    info = await js.stream_info(settings.graph_stream)
    last = info.state.last_seq
    out = []
    if not info.state.messages:
        return out
    sub = await js.subscribe(subject, stream=settings.graph_stream, ordered_consumer=True)
    try:
        while True:
            msg = await sub.next_msg(timeout=5)
            decode_change(msg.data)  # every message is a valid contract event
            out.append((msg.metadata.sequence.stream, dict(msg.headers or {}), json.loads(msg.data)))
            if msg.metadata.sequence.stream >= last:
                break
    finally:
        await sub.unsubscribe()
    return out


def wire(value):
    """``value`` as it looks after the JSON contract (timestamps become RFC 3339 strings)."""
    return json.loads(msgspec.json.encode(value))


def projection_graph(settings, version: int = VERSION):
    """The version's nodes and edges as the example stores them."""
    with GraphStore(settings.projections_dir / "graph" / f"v{version}") as store:
        dump = export(store)
    nodes = {k: (t, wire(p)) for k, (t, p) in dump.nodes.items()}
    edges = {k: (wire(p) if p else None) for k, p in dump.edges.items()}
    return nodes, edges


def example_cmd(settings, db: Path, *extra: str) -> list[str]:
    """Command line of the downstream example against the test's stream."""
    return [sys.executable, str(EXAMPLE), "--nats-url", settings.nats_url,
            "--stream", settings.graph_stream, "--prefix", settings.graph_subject_prefix,
            "--db", str(db), *extra]


def run_example(settings, db: Path, *, until_idle: float = 0.5) -> subprocess.CompletedProcess:
    """Run the example until it has caught up; fail on a non-zero exit."""
    result = subprocess.run(example_cmd(settings, db, "--until-idle", str(until_idle)),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    return result
