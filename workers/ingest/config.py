"""What an ingest worker is given (:class:`IngestConfig`) and what it counts (:class:`IngestStats`)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from workers.natsio.streams import StreamSpec

__all__ = ["IngestConfig", "IngestStats"]


@dataclass(frozen=True, kw_only=True)
class IngestConfig:
    """How the ingest worker consumes (built from Settings in ``ops``)."""

    stream: StreamSpec
    durable: str = "ingest"
    batch_max: int = 20_000
    max_event_bytes: int = 1024 * 1024
    ack_wait_secs: float = 30
    pull_expires_secs: float = 2
    #: bytes requested at a time, across open pull requests (each request may
    #: still ask for one message of the server's ``max_payload``)
    inflight_bytes: int = 32 * 1024 * 1024
    #: tests only - "after_commit": SIGKILL between a commit and its ack; "before_commit":
    #: SIGKILL as the second batch is about to commit, with more deliveries in flight
    failpoint: str | None = None


@dataclass
class IngestStats:
    """Counters of one worker run (also exported as metrics)."""

    appended: int = 0
    duplicates: int = 0
    quarantined: int = 0
    batches: int = 0
    head: int = 0
    rewinds: int = 0
    gone: int = 0  # stream messages dropped before they were read (stream limits, deletes)
    last_commit_ms: float = 0.0
    # The latest batch latencies only: a long-running worker must not grow without bound.
    commit_ms: deque[float] = field(default_factory=lambda: deque(maxlen=10_000))
