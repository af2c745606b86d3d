"""Heartbeats: each fleet process writes its own key in a JetStream KV bucket.

The bucket has a TTL, so a process that stops writing (killed, wedged, cut
off) disappears from the bucket and ``fleet health`` reports it ``down``. A
heartbeat carries the process's state (``starting``, ``ok``, ``rebuilding``,
...), progress details for the stuck-detector, and a snapshot of its
metrics (:class:`MetricFamily`: OpenTelemetry's names, units and histogram
buckets, unconverted) that the ``api`` process renders on ``/metrics``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NoKeysError, NotFoundError
from nats.js.kv import KeyValue

__all__ = ["HEARTBEAT_BUCKET", "Beat", "Heartbeat", "MetricFamily", "MetricPoint", "heartbeat_bucket",
           "read_heartbeats"]

log = logging.getLogger(__name__)

HEARTBEAT_BUCKET = "fleet_heartbeats"


class MetricPoint(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One data point: ``value`` of a counter or gauge, or a histogram's ``count``, ``sum`` and
    per-bucket ``buckets`` (not cumulative; one more than ``bounds``, the upper bounds)."""

    labels: dict[str, str] = {}
    value: float = 0.0
    count: int = 0
    sum: float = 0.0
    bounds: list[float] = []
    buckets: list[int] = []


class MetricFamily(msgspec.Struct, kw_only=True):
    """One instrument's points as the process's meter holds them (cumulative since start)."""

    name: str  # the instrument's name, e.g. ``fleet.projector.events``
    kind: str  # counter | gauge | histogram
    unit: str = ""  # UCUM as given to the instrument: ``ms``, ``s``, ``By``, ``{event}``
    description: str = ""
    points: list[MetricPoint] = []


class Beat(msgspec.Struct, kw_only=True):
    """One heartbeat record."""

    process: str
    state: str
    at: float
    started_at: float
    pid: int
    host: str
    interval_secs: float
    details: dict[str, Any] = {}
    #: written by releases before ``families``; read so that their beats still decode, not rendered
    metrics: dict[str, float] = {}
    families: list[MetricFamily] = []


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Beat)


async def heartbeat_bucket(js: JetStreamContext, *, ttl_secs: float = 15, replicas: int = 1) -> KeyValue:
    """The heartbeat bucket, created with ``ttl_secs`` and ``replicas`` (FLEET_STREAM_REPLICAS) when missing."""
    try:
        return await js.key_value(HEARTBEAT_BUCKET)
    except (BucketNotFoundError, NotFoundError):
        return await js.create_key_value(KeyValueConfig(bucket=HEARTBEAT_BUCKET, ttl=ttl_secs, history=1,
                                                        replicas=replicas))


@dataclass
class Heartbeat:
    """Writes ``process``'s heartbeat every ``interval_secs`` until stopped."""

    js: JetStreamContext
    process: str
    status: Callable[[], tuple[str, dict[str, Any]]]
    metrics: Callable[[], list[MetricFamily]] | None = None
    interval_secs: float = 2.0
    ttl_secs: float = 15.0

    def __post_init__(self) -> None:
        self._started_at = time.time()
        self._task: asyncio.Task | None = None
        self._kv: KeyValue | None = None
        self._stopping = False

    async def beat(self) -> None:
        """Write one heartbeat now."""
        if self._kv is None:
            self._kv = await heartbeat_bucket(self.js, ttl_secs=self.ttl_secs)
        state, details = self.status()
        record = Beat(process=self.process, state=state, at=time.time(), started_at=self._started_at,
                      pid=os.getpid(), host=socket.gethostname(), interval_secs=self.interval_secs,
                      details=details, families=self.metrics() if self.metrics else [])
        await self._kv.put(self.process, _encoder.encode(record))

    async def _loop(self) -> None:
        # Stopping sets the flag as well as cancelling: nats-py swallows a cancellation
        # that arrives inside its publish (Client._flush_pending), and a loop relying on
        # the cancel alone then beat on forever while stop() waited for it.
        while not self._stopping:
            try:
                await self.beat()
            except Exception as e:  # NATS away: keep trying, the TTL tells the truth
                if self._stopping:
                    break
                log.warning("heartbeat not written", extra={"component": self.process, "error": repr(e)})
            if not self._stopping:
                await asyncio.sleep(self.interval_secs)

    def start(self) -> None:
        """Start beating in the background."""
        self._task = asyncio.create_task(self._loop(), name=f"heartbeat-{self.process}")

    async def stop(self) -> None:
        """Stop beating and record ``stopped`` (the key then expires with the TTL)."""
        self._stopping = True
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.status = lambda: ("stopped", {})
        try:
            await self.beat()
        except Exception:  # best effort on the way out
            pass


async def read_heartbeats(js: JetStreamContext) -> dict[str, Beat]:
    """Every live heartbeat in the bucket, by process name (empty when none)."""
    try:
        kv = await js.key_value(HEARTBEAT_BUCKET)
    except (BucketNotFoundError, NotFoundError):
        return {}
    try:
        keys = await kv.keys()
    except (NoKeysError, NotFoundError):  # an empty bucket (every key expired) has no keys
        return {}
    beats: dict[str, Beat] = {}
    for key in keys:
        try:
            entry = await kv.get(key)
        except KeyNotFoundError:
            continue
        if entry.value:
            beats[key] = _decoder.decode(entry.value)
    return beats
