"""A downstream service that keeps its own copy of the graph from the change stream.

It needs nothing but NATS (``pip install nats-py``) and the contract published
by ``fleet schema changes``: it imports nothing from graphfleet. The copy is a
SQLite file with three tables: ``nodes(id, type, props)``,
``edges(src, edge, dst, props)`` and ``position`` (the last change applied:
projection, version, seq, and the GRAPH stream sequence it came from).

It follows README "The subscriber's rules":

* **Start.** An empty copy either follows the stream from its first message
  (the fleet's first version starts with a ``rebuilt`` notice and a full
  diff), or, with ``--api-url``, loads the export (``GET /graph/export``):
  every node and edge of the active version at one ``seq``, whose digest it
  checks, and then follows the stream from that ``seq + 1``.
* **In order, each change once.** Changes are applied in one SQLite
  transaction per fetched batch, together with the new position; the
  messages are acknowledged only after the commit. A change whose ``seq`` is
  at or below the position's for the same version is a repeat (a
  redelivery, or a republish by the fleet after a crash) and is dropped.
* **No gaps.** The next change of a version must be ``seq + 1``. If anything
  else arrives the batch is rolled back and the consumer restarted at the
  stream sequence after the last applied change. The same happens at every
  start: the durable consumer is re-created at the position stored in the
  copy, so a crash (or a kill -9 anywhere) costs neither a change nor a wait
  for JetStream's ack timeout. A gap that stays is an error (exit 1).
* **Version changes.** A promotion or a rollback starts the new active
  version's part of the stream with a ``rebuilt`` notice whose ``previous`` is
  the version the copy follows (``null``: start from an empty copy). The copy
  switches to that version there and applies what follows: the exact
  difference between the two versions (``diff: true``) and live changes, up
  to the ``synced`` change that closes the version change. There the copy
  must equal the version: it checks ``digest`` against its own. Changes of
  an older version that arrive after the switch are dropped.
* **Resync.** A ``synced`` change with ``resync: true`` (the difference was too
  large to send), or a digest that does not match, means: load the export
  again (``--api-url``) and follow on from there.

Every change carries the full state it leaves (node properties, edge
properties), so applying is ``INSERT OR REPLACE`` / ``DELETE``.

Usage::

    python examples/downstream_copy.py --nats-url nats://127.0.0.1:4222 --db graph-copy.sqlite \\
        --api-url http://127.0.0.1:8080
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
import time
import urllib.request
from datetime import datetime, timezone
from hashlib import sha256
from pathlib import Path

import nats
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

log = logging.getLogger("downstream_copy")

SCHEMA = """
CREATE TABLE IF NOT EXISTS position (
    projection TEXT PRIMARY KEY, version INTEGER NOT NULL, seq INTEGER NOT NULL,
    stream_seq INTEGER NOT NULL, since REAL);
CREATE TABLE IF NOT EXISTS nodes (id TEXT PRIMARY KEY, type TEXT NOT NULL, props TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS edges (
    src TEXT NOT NULL, edge TEXT NOT NULL, dst TEXT NOT NULL, props TEXT,
    PRIMARY KEY (src, edge, dst));
CREATE INDEX IF NOT EXISTS edges_by_dst ON edges(dst);
"""
#: how far before an export's start the stream is read again (clocks of two hosts may differ)
CLOCK_MARGIN_SECS = 30.0
_MODULUS = 1 << 256


class Gap(Exception):
    """A change arrived that is not the next one: resume from the stored position."""


class Resync(Exception):
    """The copy must be loaded again from the export (told so, or its digest did not match)."""


class GraphCopy:
    """The SQLite copy of one projection's graph and the position it reflects.

    ``position`` is ``(version, seq, stream_seq, since)``: ``stream_seq`` 0
    means the copy came from an export and has not met a message of the
    stream yet; ``since`` is then when the export was taken (epoch seconds).
    """

    def __init__(self, path: str | Path, projection: str = "graph") -> None:
        self.projection = projection
        # One thread at a time, but not always the same: an export loads off the event loop.
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode = WAL")
        self.db.executescript(SCHEMA)
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(position)")}
        if "since" not in columns:  # a copy made by an earlier version of this example
            self.db.execute("ALTER TABLE position ADD COLUMN since REAL")
        self.synced = 0  # `synced` changes whose digest the copy matched
        self.last_digest: str | None = None

    def position(self) -> tuple[int, int, int, float | None] | None:
        """``(version, seq, stream_seq, since)`` of the last applied change, or None."""
        return self.db.execute("SELECT version, seq, stream_seq, since FROM position"
                               " WHERE projection = ?", (self.projection,)).fetchone()

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
                kind = change["kind"]
                if kind == "rebuilt":
                    self._rebuilt(position, change)
                elif kind == "synced":
                    self._synced(change)
                else:
                    self._apply_one(change)
                position = (change["version"], change["seq"], stream_seq, None)
                applied += 1
            if position is not None:
                db.execute("INSERT OR REPLACE INTO position VALUES (?, ?, ?, ?, ?)",
                           (self.projection, *position))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return applied, dropped

    def _rebuilt(self, position: tuple | None, change: dict) -> None:
        previous = change.get("previous")
        if previous is None:
            self.db.execute("DELETE FROM nodes")
            self.db.execute("DELETE FROM edges")
        log.info("version change: v%s (previous %s), following on", change["version"], previous)

    def _synced(self, change: dict) -> None:
        if change.get("resync"):
            raise Resync(f"v{change['version']} replaced v{change.get('previous')} with at least"
                         f" {change.get('changes')} differences: the fleet sent none")
        expected = change.get("digest")
        if expected:
            mine = self.digest()
            if mine != expected:
                raise Resync(f"copy digest {mine} differs from v{change['version']}'s {expected}"
                             f" at seq {change['seq']}")
            self.synced += 1
            self.last_digest = mine
            log.info("version change complete: v%s, %s diff changes, digest %s matches",
                     change["version"], change.get("changes", 0), mine[:16])

    def _apply_one(self, change: dict) -> None:
        kind, db = change["kind"], self.db
        if kind == "node_upserted":
            db.execute("INSERT OR REPLACE INTO nodes VALUES (?, ?, ?)",
                       (change["node"], change["node_type"], canonical(change.get("props") or {})))
        elif kind == "node_deleted":
            db.execute("DELETE FROM nodes WHERE id = ?", (change["node"],))
            db.execute("DELETE FROM edges WHERE src = ? OR dst = ?", (change["node"], change["node"]))
        elif kind in ("edge_added", "edge_updated"):
            props = change.get("props")
            db.execute("INSERT OR REPLACE INTO edges VALUES (?, ?, ?, ?)",
                       (change["src"], change["edge"], change["dst"], canonical(props) if props else None))
        elif kind == "edge_removed":
            db.execute("DELETE FROM edges WHERE src = ? AND edge = ? AND dst = ?",
                       (change["src"], change["edge"], change["dst"]))
        else:
            log.warning("unknown change kind %r (newer contract?); skipped", kind)

    def load_export(self, lines, started_at: float) -> tuple[int, int]:
        """Replace the copy with an export (an iterable of its byte lines); (version, seq).

        Checks the lines against the header's digest before committing.
        """
        lines = iter(lines)
        header = json.loads(next(lines))
        if header.get("kind") != "export":
            raise ValueError(f"not an export header: {header!r}")
        total = count = 0
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM nodes")
            db.execute("DELETE FROM edges")
            for raw in lines:
                raw = raw.rstrip(b"\n")
                if not raw:
                    continue
                total += int.from_bytes(sha256(raw).digest(), "big")
                count += 1
                item = json.loads(raw)
                props = item["props"]
                if "id" in item:
                    db.execute("INSERT INTO nodes VALUES (?, ?, ?)",
                               (item["id"], item["type"], canonical(props)))
                else:
                    db.execute("INSERT INTO edges VALUES (?, ?, ?, ?)",
                               (item["src"], item["edge"], item["dst"], canonical(props) if props else None))
            got = f"{total % _MODULUS:064x}"
            if header.get("digest") and got != header["digest"]:
                raise ValueError(f"export digest {got} differs from its header's {header['digest']}"
                                 " (cut short?)")
            if count != header.get("nodes", 0) + header.get("edges", 0):
                raise ValueError(f"export has {count} lines, its header names"
                                 f" {header.get('nodes')} nodes and {header.get('edges')} edges")
            db.execute("INSERT OR REPLACE INTO position VALUES (?, ?, ?, 0, ?)",
                       (self.projection, header["version"], header["seq"], started_at))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        log.info("loaded the export of v%s at seq %s: %d nodes, %d edges, digest %s",
                 header["version"], header["seq"], header.get("nodes"), header.get("edges"),
                 got[:16])
        return header["version"], header["seq"]

    def digest(self) -> str:
        """The graph digest of the copy (README "Export and digest")."""
        total = 0
        for node, node_type, props in self.db.execute("SELECT id, type, props FROM nodes"):
            line = canonical({"id": node, "props": json.loads(props), "type": node_type})
            total += int.from_bytes(sha256(line.encode()).digest(), "big")
        for src, edge, dst, props in self.db.execute("SELECT src, edge, dst, props FROM edges"):
            line = canonical({"dst": dst, "edge": edge, "props": json.loads(props) if props else {},
                              "src": src})
            total += int.from_bytes(sha256(line.encode()).digest(), "big")
        return f"{total % _MODULUS:064x}"

    def graph(self) -> tuple[dict[str, tuple[str, dict]], dict[tuple[str, str, str], dict | None]]:
        """The copy as ``nodes {id: (type, props)}`` and ``edges {(src, EDGE, dst): props}``."""
        nodes = {i: (t, json.loads(p)) for i, t, p in self.db.execute("SELECT * FROM nodes")}
        edges = {(s, e, d): (json.loads(p) if p else None)
                 for s, e, d, p in self.db.execute("SELECT * FROM edges")}
        return nodes, edges

    def close(self) -> None:
        self.db.close()


def canonical(value: object) -> str:
    """Canonical JSON (README "Export and digest"): sorted keys, no whitespace, UTF-8 as itself."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _verdict(position: tuple | None, change: dict) -> str:
    """``apply``, ``drop`` (a repeat or a stale version) or ``gap``."""
    version, seq, kind = change["version"], change["seq"], change["kind"]
    if position is None:
        return "apply" if seq == 1 or kind == "rebuilt" else "gap"
    if version == position[0]:
        if seq <= position[1]:
            return "drop"
        return "apply" if seq == position[1] + 1 else "gap"
    if kind == "rebuilt" and change.get("previous") == position[0]:
        return "apply"  # a version change (promotion or rollback): the copy switches to it here
    if not position[2]:
        return "drop"  # loaded from an export: what another version sent before it was taken
    return "drop" if kind != "rebuilt" and version < position[0] else "gap"


def fetch_export(api_url: str, timeout: float = 600.0):
    """``(lines, started_at)``: the export of the active version, streamed line by line."""
    started_at = time.time()
    url = f"{api_url.rstrip('/')}/graph/export"  # the active version of the fleet's graph
    response = urllib.request.urlopen(url, timeout=timeout)
    return response, started_at


def _start(position: tuple | None) -> dict:
    """Where the consumer starts: after the last applied message, or a little before an export."""
    if position is None:
        return {"deliver_policy": DeliverPolicy.ALL}
    if position[2]:
        return {"deliver_policy": DeliverPolicy.BY_START_SEQUENCE, "opt_start_seq": position[2] + 1}
    since = datetime.fromtimestamp((position[3] or 0) - CLOCK_MARGIN_SECS, timezone.utc)
    return {"deliver_policy": DeliverPolicy.BY_START_TIME,
            "opt_start_time": since.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}


async def _consumer(js, args, position: tuple | None):
    """(Re-)create the durable pull consumer where ``position`` says and bind to it."""
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
    config = ConsumerConfig(durable_name=args.durable, ack_policy=AckPolicy.ALL, ack_wait=30,
                            max_ack_pending=args.batch * 4, filter_subject=subject, **_start(position))
    await js.add_consumer(args.stream, config)
    return await js.pull_subscribe(subject, durable=args.durable, stream=args.stream)


async def _load_export(copy: GraphCopy, args) -> None:
    if not args.api_url:
        raise SystemExit("the copy must be loaded from the fleet's export, but no --api-url was"
                         " given (e.g. --api-url http://127.0.0.1:8080)")

    def load() -> None:
        response, started_at = fetch_export(args.api_url)
        with response:
            copy.load_export(response, started_at)

    await asyncio.get_running_loop().run_in_executor(None, load)


async def run(args, stop: asyncio.Event) -> int:
    """Follow the stream into the copy until ``stop`` (or idle, with ``--until-idle``)."""
    copy = GraphCopy(args.db, args.projection)
    nc = await nats.connect(args.nats_url, name="downstream-copy", max_reconnect_attempts=-1)
    js = nc.jetstream()
    if copy.position() is None and args.api_url:
        await _load_export(copy, args)
    position = copy.position()
    sub = await _consumer(js, args, position)
    log.info("following %s from %s", args.stream, position)
    idle = 0.0
    retried_at = None
    total = resyncs = 0
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
                sub = await _consumer(js, args, position)
                continue
            except Resync as e:
                resyncs += 1
                log.warning("resync: %s; loading the export", e)
                await sub.unsubscribe()
                await _load_export(copy, args)
                sub = await _consumer(js, args, copy.position())
                continue
            retried_at = None
            total += applied
            await msgs[-1].ack()  # AckPolicy.ALL: acknowledges the whole batch
            if dropped:
                log.info("dropped %d repeats", dropped)
    finally:
        await nc.close()  # unacked messages (none after a clean stop) are redelivered anyway
        log.info("stopped at %s after applying %d changes (%d version changes checked, %d resyncs)",
                 copy.position(), total, copy.synced, resyncs)
        copy.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nats-url", default="nats://127.0.0.1:4222")
    parser.add_argument("--api-url", default=None,
                        help="the fleet's API (e.g. http://127.0.0.1:8080): start from its export"
                             " and resync from it when told to")
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
