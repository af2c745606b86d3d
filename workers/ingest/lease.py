"""The log writer's lease: one key in a JetStream key-value bucket with a TTL.

``fleet ingest`` creates the key (only if absent) before it writes and
renews it with a compare-and-set on its revision every third of the TTL; a
process that cannot renew stops writing before the server can expire the key
(:meth:`WriterLease.check` fails ``margin`` before the TTL counted from the
renewal's send), and one that finds its revision replaced has lost the lease
for good. A writer is known by an id kept in its data directory, so a
restarted ingest on the same host picks up its own lease at once, while any
other must wait for it to expire (``take_over``) or is refused.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from pathlib import Path

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from events.errors import LeaseTaken

__all__ = ["LEASE_BUCKET", "Holder", "WriterLease", "writer_id"]

log = logging.getLogger(__name__)

LEASE_BUCKET = "fleet_writer"
_ID_FILE = "writer-id"


class Holder(msgspec.Struct, frozen=True, kw_only=True):
    """Who holds the lease: the value of the key."""

    writer: str  # the data directory's writer id
    host: str
    pid: int
    data_dir: str
    since: float
    renewed: float


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Holder).decode


def writer_id(data_dir: Path) -> str:
    """This data directory's writer id, made at its first use."""
    path = Path(data_dir) / _ID_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        made = uuid.uuid4().hex
        aside = path.with_name(f".{_ID_FILE}.{os.getpid()}")
        aside.write_text(made + "\n")
        os.replace(aside, path)
        return made


class WriterLease:
    """The lease on ``key`` for the writer of ``data_dir``."""

    def __init__(self, js: JetStreamContext, key: str, data_dir: Path, *, ttl_secs: float,
                 replicas: int = 1) -> None:
        self._js = js
        self.key = key
        self.data_dir = Path(data_dir)
        self.ttl_secs = ttl_secs
        self.replicas = replicas
        self.writer = writer_id(self.data_dir)
        self.revision = 0
        self._since = time.time()
        self._valid_until = 0.0  # monotonic
        self.lost: str | None = None
        self._kv: KeyValue | None = None
        self._task: asyncio.Task | None = None

    @property
    def margin_secs(self) -> float:
        """How long before the server could expire it the lease counts as gone here."""
        return min(1.0, self.ttl_secs / 4)

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            try:
                self._kv = await self._js.key_value(LEASE_BUCKET)
            except (BucketNotFoundError, NotFoundError):
                self._kv = await self._js.create_key_value(KeyValueConfig(
                    bucket=LEASE_BUCKET, history=1, ttl=self.ttl_secs, replicas=self.replicas))
        return self._kv

    def _value(self) -> bytes:
        return _encode(Holder(writer=self.writer, host=socket.gethostname(), pid=os.getpid(),
                              data_dir=str(self.data_dir.resolve()), since=self._since,
                              renewed=time.time()))

    async def holder(self) -> tuple[Holder | None, int]:
        """The current holder and the key's revision (``None, 0`` when free)."""
        kv = await self._bucket()
        try:
            entry = await kv.get(self.key)
        except (KeyNotFoundError, NotFoundError):
            return None, 0
        if not entry.value:
            return None, entry.revision or 0
        return _decode(entry.value), entry.revision or 0

    async def acquire(self, *, wait_secs: float = 0.0) -> None:
        """Take the lease: free, or ours already; else wait up to ``wait_secs`` for it to expire,
        then :class:`LeaseTaken` naming the holder."""
        deadline = time.monotonic() + wait_secs
        kv = await self._bucket()
        while True:
            sent = time.monotonic()
            held, revision = await self.holder()
            try:
                if held is None:
                    self.revision = await (kv.update(self.key, self._value(), last=revision) if revision
                                           else kv.create(self.key, self._value()))
                    break
                if held.writer == self.writer:  # this data directory's previous process
                    self.revision = await kv.update(self.key, self._value(), last=revision)
                    break
            except KeyWrongLastSequenceError:
                continue  # someone wrote it meanwhile: look again
            if time.monotonic() >= deadline:
                raise LeaseTaken(
                    f"the log writer's lease {LEASE_BUCKET}/{self.key} is held by {held.host}"
                    f" (pid {held.pid}, data dir {held.data_dir}), renewed"
                    f" {time.time() - held.renewed:.1f}s ago: another ingest is the writer, and this"
                    " one refuses to write. If that host is lost, wait for its lease to expire"
                    f" ({self.ttl_secs:g}s) and run `fleet ingest --take-over` on a replica that has"
                    " caught up (README \"Beyond one machine\")")
            await asyncio.sleep(min(0.5, max(0.05, deadline - time.monotonic())))
        self._valid_until = sent + self.ttl_secs - self.margin_secs
        log.info("writer lease acquired", extra={"key": self.key, "writer": self.writer,
                                                 "revision": self.revision})

    async def renew(self) -> None:
        """Renew once (compare-and-set on the revision); a lost lease is recorded in :attr:`lost`."""
        kv = await self._bucket()
        sent = time.monotonic()
        try:
            self.revision = await kv.update(self.key, self._value(), last=self.revision)
        except KeyWrongLastSequenceError:
            held, _ = await self.holder()
            who = f"{held.host} (pid {held.pid}, data dir {held.data_dir})" if held else "nobody (expired)"
            self.lost = (f"the log writer's lease {LEASE_BUCKET}/{self.key} was taken over: it is now"
                         f" held by {who} - this ingest stops writing")
            log.error("writer lease lost", extra={"key": self.key, "holder": who})
            return
        self._valid_until = sent + self.ttl_secs - self.margin_secs

    def check(self) -> None:
        """Raise :class:`LeaseTaken` unless the lease is surely held now (called before each commit)."""
        if self.lost:
            raise LeaseTaken(self.lost)
        if time.monotonic() > self._valid_until:
            raise LeaseTaken(f"the log writer's lease {LEASE_BUCKET}/{self.key} could not be renewed"
                             f" for {self.ttl_secs:g}s (NATS unreachable?): another host may take it"
                             " over, so this ingest stops writing")

    async def keep(self, on_lost) -> None:
        """Renew every third of the TTL until cancelled; ``on_lost()`` once it is lost or lapsed."""
        while True:
            await asyncio.sleep(self.ttl_secs / 3)
            try:
                await self.renew()
            except Exception as e:  # noqa: BLE001 - NATS away: check() fences when it lapses
                log.warning("writer lease not renewed", extra={"key": self.key, "error": repr(e)})
            try:
                self.check()
            except LeaseTaken:
                on_lost()
                return

    def start(self, on_lost) -> None:
        """Renew in the background."""
        self._task = asyncio.create_task(self.keep(on_lost), name="writer-lease")

    async def release(self) -> None:
        """Stop renewing and delete the key if still ours (a clean stop frees it at once)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping
                pass
            self._task = None
        if self.lost or not self.revision:
            return
        try:
            kv = await self._bucket()
            await kv.delete(self.key, last=self.revision)
        except Exception as e:  # noqa: BLE001 - it expires with its TTL anyway
            log.warning("writer lease not released", extra={"key": self.key, "error": repr(e)})
