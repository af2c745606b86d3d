"""A downstream service that keeps its own copy of the graph from the change stream alone.

It needs nothing but NATS (``pip install nats-py``) and the contract published
by ``fleet schema changes``: it imports nothing from graphfleet. The copy is a
SQLite file with three tables: ``nodes(id, type, props)``,
``edges(src, edge, dst, props)`` and ``position`` (the last change applied:
projection, version, seq, and the GRAPH stream sequence it came from).

How it stays correct:

* **In order, each change once.** Changes are applied in one SQLite
  transaction per fetched batch, together with the new position; the
  messages are acknowledged only after the commit. A change whose ``seq`` is
  at or below the position's ``seq`` for the same version is a repeat (a
  redelivery, or a republish by the fleet after a crash) and is dropped.
* **No gaps.** The next change of a version must be ``seq + 1``. If anything
  else arrives (say a redelivery overtook a message), the batch is rolled
  back and the consumer restarted at the stream sequence after the last
  applied change. The same happens at every start: the durable consumer is
  re-created at the position stored in the copy, so a crash between the
  commit and the acks (or a kill -9 anywhere) costs neither a change nor a
  wait for JetStream's ack timeout.
* **Version changes.** A promotion or a rollback starts the new active
  version's part of the stream with a ``rebuilt`` notice whose ``previous``
  is the version the copy follows (its ``seq`` is 1 for a first build, and
  goes on after the version's earlier changes for a rollback or a replay).
  The copy switches to that version there and applies what follows: first
  the exact difference between the two versions (``diff: true``), then live
  changes, so it stays exact without re-reading the graph. Changes of an
  older version that arrive after the switch are dropped.

Every change carries the full state it leaves (node properties, edge
properties), so applying is ``INSERT OR REPLACE`` / ``DELETE``.

Usage::

    python examples/downstream_copy.py --nats-url nats://127.0.0.1:4222 --db graph-copy.sqlite
    python examples/downstream_copy.py --db copy.sqlite --until-idle 2   # catch up, then exit
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sqlite3
import sys
from pathlib import Path

import nats
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

log = logging.getLogger("downstream_copy")

SCHEMA = """
CREATE TABLE IF NOT EXISTS position (
    projection TEXT PRIMARY KEY, version INTEGER NOT NULL, seq INTEGER NOT NULL,
    stream_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (id TEXT PRIMARY KEY, type TEXT NOT NULL, props TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS edges (
    src TEXT NOT NULL, edge TEXT NOT NULL, dst TEXT NOT NULL, props TEXT,
    PRIMARY KEY (src, edge, dst));
CREATE INDEX IF NOT EXISTS edges_by_dst ON edges(dst);
"""


class Gap(Exception):
    """A change arrived that is not the next one: resume from the stored position."""


class GraphCopy:
    """The SQLite copy of one projection's graph and the position it reflects."""

    def __init__(self, path: str | Path, projection: str = "graph") -> None:
        self.projection = projection
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.executescript(SCHEMA)

    def position(self) -> tuple[int, int, int] | None:
        """``(version, seq, stream_seq)`` of the last applied change, or None."""
        return self.db.execute("SELECT version, seq, stream_seq FROM position WHERE projection = ?",
                               (self.projection,)).fetchone()

    def apply(self, batch: list[tuple[int, dict]]) -> tuple[int, int]:
        """Apply ``(stream_seq, change)`` pairs in one transaction; (applied, dropped)."""
        applied = dropped = 0
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            position = self.position()
            for stream_seq, change in batch:
                verdict = _verdict(position, change)
                if verdict == "drop":
                    dropped += 1
                    continue
                if verdict == "gap":
                    raise Gap(f"after {position} came v{change['version']}:{change['seq']}"
                              f" ({change['kind']}) at stream sequence {stream_seq}")
                if change["kind"] == "rebuilt":
                    self._rebuilt(position, change)
                else:
                    self._apply_one(change)
                position = (change["version"], change["seq"], stream_seq)
                applied += 1
            if position is not None:
                db.execute("INSERT OR REPLACE INTO position VALUES (?, ?, ?, ?)",
                           (self.projection, *position))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return applied, dropped

    def _rebuilt(self, position: tuple[int, int, int] | None, change: dict) -> None:
        previous = change.get("previous")
        if previous is None:
            self.db.execute("DELETE FROM nodes")
            self.db.execute("DELETE FROM edges")
        elif position is not None and position[0] != previous:
            log.warning("v%s replaced v%s but this copy holds v%s; carrying it over",
                        change["version"], previous, position[0])
        log.info("projection rebuilt: v%s (previous %s), following on", change["version"], previous)

    def _apply_one(self, change: dict) -> None:
        kind, db = change["kind"], self.db
        if kind == "node_upserted":
            db.execute("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?)",
                       (change["node"], change["node_type"], _dumps(change.get("props") or {})))
        elif kind == "node_deleted":
            db.execute("DELETE FROM nodes WHERE id = ?", (change["node"],))
            db.execute("DELETE FROM edges WHERE src = ? OR dst = ?", (change["node"], change["node"]))
        elif kind in ("edge_added", "edge_updated"):
            props = change.get("props")
            db.execute("INSERT OR REPLACE INTO edges VALUES (?, ?, ?, ?)",
                       (change["src"], change["edge"], change["dst"], _dumps(props) if props else None))
        elif kind == "edge_removed":
            db.execute("DELETE FROM edges WHERE src = ? AND edge = ? AND dst = ?",
                       (change["src"], change["edge"], change["dst"]))
        else:
            log.warning("unknown change kind %r (newer contract?); skipped", kind)

    def graph(self) -> tuple[dict[str, tuple[str, dict]], dict[tuple[str, str, str], dict | None]]:
        """The copy as ``nodes {id: (type, props)}`` and ``edges {(src, EDGE, dst): props}``."""
        nodes = {i: (t, json.loads(p)) for i, t, p in self.db.execute("SELECT * FROM nodes")}
        edges = {(s, e, d): (json.loads(p) if p else None)
                 for s, e, d, p in self.db.execute("SELECT * FROM edges")}
        return nodes, edges

    def close(self) -> None:
        self.db.close()


def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _verdict(position: tuple[int, int, int] | None, change: dict) -> str:
    """``apply``, ``drop`` (a repeat or a stale version) or ``gap``."""
    version, seq = change["version"], change["seq"]
    if position is None:
        return "apply" if seq == 1 or change["kind"] == "rebuilt" else "gap"
    if version == position[0]:
        if seq <= position[1]:
            return "drop"
        return "apply" if seq == position[1] + 1 else "gap"
    if change["kind"] == "rebuilt" and change.get("previous") == position[0]:
        return "apply"  # a version change (promotion or rollback): the copy switches to it here
    return "drop" if change["kind"] != "rebuilt" and version < position[0] else "gap"


async def _consumer(js, args, start_seq: int):
    """(Re-)create the durable pull consumer at ``start_seq`` and bind to it."""
    subject = f"{args.prefix}.{args.projection}.>"
    while True:
        try:
            await js.delete_consumer(args.stream, args.durable)
            break
        except NotFoundError as e:
            if "stream" not in str(e).lower():
                break  # no consumer yet: nothing to delete
            # The fleet creates the stream when its change publisher first starts.
            log.info("stream %s does not exist yet; waiting for the fleet to create it", args.stream)
            await asyncio.sleep(1.0)
    config = ConsumerConfig(
        durable_name=args.durable, ack_policy=AckPolicy.ALL, ack_wait=30,
        max_ack_pending=args.batch * 4, filter_subject=subject,
        deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=start_seq,
    )
    await js.add_consumer(args.stream, config)
    return await js.pull_subscribe(subject, durable=args.durable, stream=args.stream)


async def run(args, stop: asyncio.Event) -> int:
    """Follow the stream into the copy until ``stop`` (or idle, with ``--until-idle``)."""
    copy = GraphCopy(args.db, args.projection)
    nc = await nats.connect(args.nats_url, name="downstream-copy", max_reconnect_attempts=-1)
    js = nc.jetstream()
    position = copy.position()
    sub = await _consumer(js, args, position[2] + 1 if position else 1)
    log.info("following %s from %s", args.stream, position)
    idle = 0.0
    retried_at = None
    total = 0
    try:
        while not stop.is_set():
            try:
                msgs = await sub.fetch(args.batch, timeout=0.5)
            except (NatsTimeoutError, asyncio.TimeoutError):
                msgs = []
            if not msgs:
                idle += 0.5
                if args.until_idle is not None and idle >= args.until_idle:
                    info = await sub.consumer_info()
                    if info.num_pending == 0 and info.num_ack_pending == 0:
                        break
                continue
            idle = 0.0
            batch = [(m.metadata.sequence.stream, json.loads(m.data)) for m in msgs]
            try:
                applied, dropped = copy.apply(batch)
            except Gap as e:
                position = copy.position()
                if retried_at == position:
                    log.error("the stream has a gap: %s", e)
                    return 1
                retried_at = position
                log.warning("out of order (%s); resuming from %s", e, position)
                await sub.unsubscribe()
                sub = await _consumer(js, args, position[2] + 1 if position else 1)
                continue
            retried_at = None
            total += applied
            await msgs[-1].ack()  # AckPolicy.ALL: acknowledges the whole batch
            if dropped:
                log.info("dropped %d repeats", dropped)
    finally:
        await nc.close()  # unacked messages (none after a clean stop) are redelivered anyway
        log.info("stopped at %s after applying %d changes", copy.position(), total)
        copy.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--stream", default="GRAPH")
    parser.add_argument("--prefix", default="graph", help="subject prefix: <prefix>.<projection>.>")
    parser.add_argument("--projection", default="graph")
    parser.add_argument("--durable", default="downstream-copy")
    parser.add_argument("--db", default="graph-copy.sqlite")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--until-idle", type=float, default=None, metavar="SECS",
                        help="exit once caught up and idle this long")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    async def runner() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await run(args, stop)

    return asyncio.run(runner())


if __name__ == "__main__":
    sys.exit(main())
