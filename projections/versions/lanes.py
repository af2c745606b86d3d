"""The change publisher's view of the versions: lanes, watermarks, wire offsets, sealing.

A *lane* is one version whose outbox the publisher drains: every retired
version (oldest retirement first), then the active one. Versions that are
``building`` or ``ready`` (never promoted) are not lanes: they emit nothing
(DESIGN invariant 8), whatever their outbox holds.

The **watermark** of a lane is the last change sequence JetStream has
acknowledged, kept in ``v<N>/changes.published`` beside the version's LMDB
environment, one fixed-width JSON line rewritten in place: a meta write
would make the publisher a second LMDB writer of the live version. It is
not fsynced: a watermark behind the truth is safe (the publisher first asks
the stream for its last change id and skips ahead to it).

A retired version is **sealed** once no process holds its writer lock; the
publisher drains a retired version, checks that it is sealed, drains it
once more, and only then moves on to the next lane.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from projections.changes.contract import parse_msg_id
from projections.errors import StoreBusy
from projections.store.files import write_atomic
from projections.store.lock import WriterLock
from projections.versions.catalog import ACTIVE, RETIRED, Versions, read_meta

__all__ = ["Lane", "OFFSET_FILE", "WATERMARK_FILE", "WatermarkFile", "is_sealed", "plan_lanes",
           "prunable", "read_offset", "read_watermark", "write_offset", "write_watermark"]

WATERMARK_FILE = "changes.published"
#: a reincarnated version's shift of its change sequences on the wire (see workers.changefeed.lane)
OFFSET_FILE = "changes.offset"


@dataclass(frozen=True)
class Lane:
    """One version to publish from, in publishing order."""

    version: int
    path: Path
    active: bool
    retired_at: float | None = None

    @property
    def key(self) -> tuple[int, float | None]:
        """Identity of this retirement (a version re-retired after a rollback is a new lane)."""
        return self.version, self.retired_at


def plan_lanes(versions: Versions) -> list[Lane]:
    """Retired versions, oldest retirement first, then the active version."""
    retired, active = [], []
    for info in versions.list():
        if info.state == RETIRED:
            retired.append(Lane(info.version, info.path, False, info.retired_at))
        elif info.state == ACTIVE:
            active.append(Lane(info.version, info.path, True))
    retired.sort(key=lambda lane: (lane.retired_at or 0.0, lane.version))
    return retired + active


def _read_record(version_dir: Path) -> dict:
    try:
        data = json.loads((Path(version_dir) / WATERMARK_FILE).read_text().strip() or "{}")
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_offset(version_dir: Path) -> int | None:
    """How far the version's change sequences are shifted on the wire.

    0 for a version built the first time; for one rebuilt in place of a
    damaged one, the shift its publisher chose (None until it chose).
    """
    try:
        meta = read_meta(version_dir)
    except (OSError, ValueError):
        meta = {}
    if not isinstance(meta, dict) or not meta.get("reincarnation_of"):
        return 0
    try:
        return int(json.loads((Path(version_dir) / OFFSET_FILE).read_text())["offset"])
    except FileNotFoundError:
        return None


def write_offset(version_dir: Path, offset: int, stream_last: str | None) -> None:
    """Record a reincarnated version's shift, durably, before anything goes out with it."""
    write_atomic(Path(version_dir) / OFFSET_FILE,
                 json.dumps({"offset": offset, "stream_last": stream_last, "at": time.time()}) + "\n")


def read_watermark(version_dir: Path) -> int:
    """The last published change sequence of a version (0 when none or unreadable)."""
    try:
        return max(0, int(_read_record(version_dir)["seq"]))
    except (ValueError, KeyError, TypeError):
        return 0


def prunable(version_dir: Path) -> int:
    """The watermark, when the file's ``seq`` and message id agree (else 0): what may be pruned.

    The publisher rewrites the file in place while others read it; a read
    torn between two writes shows a ``seq`` that disagrees with the id, so
    it can never pass for a sequence JetStream has not acknowledged.
    """
    record = _read_record(version_dir)
    parsed = parse_msg_id(record.get("msg_id"))
    seq = record.get("seq")
    offset = read_offset(version_dir) or 0  # the id carries the sequence on the wire
    return seq if parsed is not None and isinstance(seq, int) and parsed[2] - offset == seq > 0 else 0


class WatermarkFile:
    """The watermark file of one version, rewritten in place (one ``pwrite`` per round).

    A record is one JSON line padded to a fixed width, so each write replaces
    the previous one whole; a torn or unreadable file reads as 0 (see the
    module docstring: republishing is safe). In-place writes cost a few
    microseconds where write-then-rename cost a millisecond per round.
    """

    _WIDTH = 128

    def __init__(self, version_dir: Path) -> None:
        self.path = Path(version_dir) / WATERMARK_FILE
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def write(self, seq: int, msg_id: str) -> None:
        """Record ``seq`` (and its message id) as published."""
        if self._fd is None:
            raise ValueError(f"{self.path} is closed")
        line = json.dumps({"seq": seq, "msg_id": msg_id, "at": round(time.time(), 3)})
        data = line.ljust(self._WIDTH - 1).encode() + b"\n"
        os.pwrite(self._fd, data, 0)
        if len(data) > self._WIDTH:
            os.ftruncate(self._fd, len(data))

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def write_watermark(version_dir: Path, seq: int, msg_id: str) -> None:
    """Record a version's watermark once (operators' tools and tests)."""
    file = WatermarkFile(version_dir)
    try:
        file.write(seq, msg_id)
    finally:
        file.close()


def is_sealed(version_dir: Path) -> bool:
    """Whether no process holds the version's writer lock (it cannot change any more)."""
    if not Path(version_dir).is_dir():
        return True  # dropped: taking the lock would create the directory again
    lock = WriterLock(version_dir, what="retired version")
    try:
        lock.acquire()
    except StoreBusy:
        return False
    lock.release()
    return True
