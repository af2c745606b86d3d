"""The graphfleet side of bench/peers.py: ingest, live projection, rebuild, queries.

* **ingest**: as bench/ingest.py - the events are published to the SDLC
  stream of a nats-server of our own, then the ingest worker (writer in a
  child process, the default) drains the stream into the committed log. The
  rate runs from the first message received to the last commit and ack.
* **live projection**: the active version starts empty; the projector's own
  ``step()`` (the live path: precise overlay, outbox records, one LMDB
  transaction per batch with its checkpoint) is called until it reaches the
  log head.
* **rebuild**: :func:`projections.versions.rebuild.rebuild` from position 0 into a
  fresh projections directory (durable LMDB, synced before promotion); the
  wall time of the whole call counts.
* **queries** go through the public reader API (:class:`GraphReader`,
  :func:`projections.read.questions.open_issues`) with its defaults, so a path
  search may stop at ``PATH_MAX_NODES`` visited nodes and answer
  :data:`TRUNCATED`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from _util import publish_then_ingest

from events.types import Event
from ops.embedded import NatsServer
from ops.settings import Settings, load_settings
from ops.wiring import open_log
from projections.model.keys import format_key, key_type
from projections.model.ontology import EDGE_TYPES, NAME, NODE_TYPES, VERSION
from projections.read.questions import open_issues
from projections.read.reader import GraphReader
from projections.store.graph import GraphStore
from projections.versions.catalog import Versions
from projections.versions.digest import digest
from projections.versions.rebuild import rebuild
from workers.projector.loop import Projector, ProjectorConfig

__all__ = ["IngestResult", "ingest", "live_apply", "run_rebuild", "same_digest", "graph_counts",
           "export_graph", "GraphfleetQueries", "TRUNCATED"]

#: a path answer of a search that gave up at the reader's ``max_nodes`` bound
#: (not a claim that there is no path: peers.py counts these apart)
TRUNCATED = "truncated"


@dataclass
class IngestResult:
    """What the ingest run measured."""

    settings: Settings
    publish_rate: float
    ingest_rate: float
    events: int


def ingest(events: Sequence[Event], tmp: Path, *, batch: int) -> IngestResult:
    """Publish ``events`` to a nats-server of our own and ingest them into a fresh log."""
    server = NatsServer(tmp / "nats").start()
    try:
        settings = load_settings({}, data_dir=tmp / "data", nats_url=server.url,
                                 embedded_nats=False, ingest_batch_max=batch)
        publish_rate, rate, stats = asyncio.run(publish_then_ingest(settings, events))
    finally:
        server.stop()
    with open_log(settings, readonly=True) as event_log:
        head = event_log.head
    if head != len(events):
        raise SystemExit(f"graphfleet log holds {head} events, expected {len(events)}")
    return IngestResult(settings, publish_rate, rate, stats.appended)


def live_apply(settings: Settings, *, batch: int) -> tuple[float, int]:
    """Apply the whole log with the projector's live path; (events/s, events).

    The active version starts empty, so the projector's loop (``run`` until
    caught up) applies the log batch by batch exactly as it follows ingest.
    """
    versions = Versions(settings.projections_dir, NAME)
    versions.create(VERSION)
    GraphStore(versions.path(VERSION), create=True).close()
    versions.mark_ready(VERSION)
    versions.promote(VERSION)
    projector = Projector(settings.log_path, settings.projections_dir,
                          ProjectorConfig(batch_max=batch, auto_rebuild=False))
    started = time.perf_counter()
    stats = asyncio.run(projector.run(asyncio.Event(), until_caught_up=True))
    secs = time.perf_counter() - started
    if stats.poisoned or stats.lag:
        raise SystemExit(f"live apply poisoned {stats.poisoned} events, lag {stats.lag}")
    return stats.applied / secs, stats.applied


def run_rebuild(settings: Settings, projections_dir: Path, *, budget_mb: int
                ) -> tuple[float, float, int]:
    """Rebuild from position 0 into ``projections_dir``; (events/s wall, bulk events/s, events)."""
    started = time.perf_counter()
    result = rebuild(settings.log_path, projections_dir, budget_bytes=budget_mb << 20,
                     with_digest=False)
    secs = time.perf_counter() - started
    return result.events / secs, result.bulk_events_per_sec, result.events


def same_digest(a_dir: Path, b_dir: Path) -> bool:
    """Whether the active versions under two projections directories hold the same graph."""
    found = []
    for root in (a_dir, b_dir):
        versions = Versions(root, NAME)
        with GraphStore(versions.path(versions.active())) as store:
            found.append(digest(store))
    return found[0].position == found[1].position and found[0].hexdigest == found[1].hexdigest


def graph_counts(projections_dir: Path) -> tuple[int, int]:
    """(nodes, edges) of the active version."""
    with GraphReader(projections_dir) as reader:
        counts = reader.counts()
    return sum(counts["nodes"].values()), sum(counts["edges"].values())


# --- export for the peer graph database ---------------------------------------


def export_graph(projections_dir: Path) -> tuple[dict[str, list[tuple[str, dict]]],
                                                 dict[str, list[tuple[str, str, str, str, dict | None]]]]:
    """Every node and edge of the active version, by scanning its store.

    Returns ``(nodes, edges)``: nodes by type as ``(id, props)``; edges by
    type as ``(src type, src id, dst type, dst id, props)``.
    """
    from projections.store.writeset import EDGE_BYTES, decode_props

    versions = Versions(projections_dir, NAME)
    nodes: dict[str, list] = {t.name: [] for t in NODE_TYPES}
    edges: dict[str, list] = {e.name: [] for e in EDGE_TYPES}
    with GraphStore(versions.path(versions.active())) as store, store.env.read() as txn:
        env = store.env
        for t in NODE_TYPES:
            out = nodes[t.name]
            for key, raw in txn.cursor(env.nodes[t.code]).iternext(keys=True, values=True):
                out.append((format_key(key), decode_props(raw)))
        for e in EDGE_TYPES:
            out = edges[e.name]
            for src, dst in txn.cursor(env.out[e.code]).iternext(keys=True, values=True):
                props = None
                if e.props:
                    raw = txn.get(src + EDGE_BYTES[e.code] + dst, db=env.eprops)
                    props = decode_props(raw) if raw is not None else None
                out.append((key_type(src).name, format_key(src), key_type(dst).name,
                            format_key(dst), props))
    return nodes, edges


# --- queries ---------------------------------------------------------------------


class GraphfleetQueries:
    """The benchmark's query set over graphfleet's reader API."""

    def __init__(self, projections_dir: Path) -> None:
        self.reader = GraphReader(projections_dir)

    def close(self) -> None:
        self.reader.close()

    def node(self, node_id: str) -> dict:
        return self.reader.node(node_id).props

    def neighbors(self, node_id: str) -> list:
        return self.reader.neighbors(node_id, direction="both", limit=100)

    def hops3(self, node_id: str) -> int:
        return self.reader.hops(node_id, 3, direction="both", max_nodes=10_000_000)["count"]

    def path(self, src: str, dst: str) -> int | str | None:
        """The shortest path's length, None for no path, or :data:`TRUNCATED`."""
        found = self.reader.path(src, dst, directed=False, max_depth=6)
        return TRUNCATED if found.truncated else found.length

    def filtered(self, project_id: str, label_id: str) -> list:
        return open_issues(self.reader, project_id, label=label_id, limit=100)
