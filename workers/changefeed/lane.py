"""Publishing one version's outbox: rounds, acks, the fence, the watermark.

:class:`LanePublisher` owns what belongs to one version (see
:mod:`projections.changes.outbox` for lanes): its outbox reader, its watermark
and watermark file, and the fence anchor. :class:`~workers.changefeed.publisher.ChangePublisher`
decides which lane goes when; the protocol is described there.

A version rebuilt in place of a damaged one (a machine crash, see
:mod:`projections.store.env`) numbers its outbox from 1 again, while the stream
may hold the damaged one's changes up to some ``L``: reusing those message
ids would make JetStream drop the new changes as duplicates. Before its
first round such a lane reads ``L`` from the stream, records it
(``changes.offset``) and sends change ``s`` as ``L + s``: the stream goes on
densely, starting with the new version's ``rebuilt`` notice. The outbox and
the watermark keep the local numbers.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from nats.aio.client import Client
from nats.js.errors import NotFoundError
from opentelemetry import trace

from events.errors import TransientError
from events.log import EventLog
from projections.changes.contract import (
    NOTICE_KINDS,
    change_from_record,
    change_msg_id,
    change_subject,
    encode_change,
    parse_msg_id,
)
from projections.changes.outbox import OutboxReader
from projections.versions.lanes import Lane, WatermarkFile, read_offset, read_watermark, write_offset
from workers.changefeed import telemetry
from workers.changefeed.acks import WRONG_LAST_MSG_ID, Ack, AckedSender

__all__ = ["ChangesConfig", "ChangesStats", "LanePublisher", "Shared"]

log = logging.getLogger("workers.changefeed.publisher")
@dataclass
class _Round:
    """What one round publishes: outbox records and their causes in the log."""

    head: int
    floor: int
    records: list[dict]
    causes: dict[int, tuple[str, str]] = field(default_factory=dict)
    parents: dict[int, str] = field(default_factory=dict)
    recorded_at: str | None = None


@dataclass(frozen=True, kw_only=True)
class ChangesConfig:
    """How the publisher runs (built from Settings in ``ops``)."""

    batch_max: int = 1_000
    window: int = 10_000
    poll_interval_ms: int = 100
    ack_timeout_secs: float = 5
    ack_every: int = 250  # ask for an ack this often (and for each round's last change)
    subject_prefix: str = "graph"
    failpoint: str | None = None  # "changes_after_ack[:N]": SIGKILL after the N-th acked round


@dataclass
class ChangesStats:
    """Counters of one publisher run."""

    published: int = 0
    duplicates: int = 0
    skipped: int = 0
    errors: int = 0
    version: int | None = None
    watermark: int = 0
    head: int = 0
    backlog: int = 0
    last_error: str | None = None
    waiting_on: str | None = None
    delay_ms: float | None = None  # of the last round: log commit -> JetStream ack


@dataclass
class Shared:
    """What every lane of one publisher shares."""

    nc: Client
    sender: AckedSender
    projection: str
    stream_name: str
    log_path: Path
    config: ChangesConfig
    stats: ChangesStats = field(default_factory=ChangesStats)
    progress_at: float = field(default_factory=time.time)
    kill_after: int | None = None
    _log: EventLog | None = None

    def event_log(self) -> EventLog:
        """The log, opened read-only on first use."""
        if self._log is None:
            self._log = EventLog(self.log_path, readonly=True)
        return self._log

    def close(self) -> None:
        """Close the log."""
        if self._log is not None:
            self._log.close()
            self._log = None

    async def stream_last(self) -> str | None:
        """The ``Nats-Msg-Id`` of this projection's last change in the stream."""
        try:
            last = await self.nc.jetstream().get_last_msg(
                self.stream_name, f"{self.config.subject_prefix}.{self.projection}.>")
        except NotFoundError:
            return None
        return (last.headers or {}).get("Nats-Msg-Id")


class LanePublisher:
    """Publishes one version's outbox, in change-sequence order."""

    def __init__(self, lane: Lane, shared: Shared) -> None:
        self.lane = lane
        self.shared = shared
        self.reader = OutboxReader(lane.path)
        self.watermark = read_watermark(lane.path)
        #: added to each change sequence on the wire (None: a reincarnation that has not chosen)
        self.offset = read_offset(lane.path)
        self.head = 0
        #: the last round was full: more may be waiting right now
        self.more = False
        self._anchor: tuple[str | None] | None = None
        self._file: WatermarkFile | None = None

    @property
    def left(self) -> int:
        """Changes written but not yet acknowledged (as of the last read)."""
        return max(0, self.head - self.watermark)

    def refresh_head(self) -> int:
        """Read the outbox head now."""
        self.head = self.reader.head()
        return self.head

    def close(self) -> None:
        """Release the environment and the watermark file."""
        self.reader.close()
        if self._file is not None:
            self._file.close()
            self._file = None

    def _read(self) -> _Round:
        """The next round's records and what the log says about their causes.

        Runs on the event loop: an LMDB cursor walk and two indexed SQLite
        queries, bounded by ``batch_max``, cost less than a hop to a worker
        thread for the few records of a live round.
        """
        head, floor, records = self.reader.read(self.watermark, self.shared.config.batch_max)
        start = max(self.watermark, floor)
        for i, record in enumerate(records):
            if record.get("seq") != start + 1 + i:
                log.error("outbox is not dense; publishing stops before the gap",
                          extra={"projection": self.shared.projection, "version": self.lane.version,
                                 "expected_seq": start + 1 + i, "found": record.get("seq")})
                records = records[:i]
                break
        positions = sorted({r["position"] for r in records
                            if r.get("position") and _caused(r)})
        batch = _Round(head, floor, records)
        if positions:
            event_log = self.shared.event_log()
            batch.causes, batch.recorded_at = event_log.causes(positions)
            batch.parents = event_log.traceparents(positions[0], positions[-1])
        return batch

    async def _fence(self) -> str | None:
        """The id the stream's last change must have before ``watermark + 1`` goes out."""
        if self._anchor is not None:
            (anchor,), self._anchor = self._anchor, None
            return anchor
        if self.watermark > 0:
            return self._msg_id(self.watermark)
        return await self.shared.stream_last()

    def _msg_id(self, seq: int) -> str:
        return change_msg_id(self.shared.projection, self.lane.version, seq + (self.offset or 0))

    async def _choose_offset(self) -> None:
        """A reincarnated version goes on after whatever the stream holds of its number.

        When the stream's last change is of another version (a retired one
        published after), the stream's last sequence bounds every change
        sequence it holds: start above it (a gap, but no id twice).
        """
        last = await self.shared.stream_last()
        parsed = parse_msg_id(last)
        if parsed is not None and parsed[:2] == (self.shared.projection, self.lane.version):
            offset = parsed[2]
        elif last is None:
            offset = 0
        else:
            info = await self.shared.nc.jetstream().stream_info(self.shared.stream_name)
            offset = info.state.last_seq
        write_offset(self.lane.path, offset, last)
        self.offset = offset
        log.warning("publishing a version rebuilt after a machine crash: its change sequences go on"
                    " after the damaged one's", extra={"projection": self.shared.projection,
                                                       "version": self.lane.version, "offset": offset,
                                                       "stream_last": last})

    async def round(self) -> int:
        """Publish the next batch; returns how far the watermark moved."""
        batch = self._read()
        records, causes, parents = batch.records, batch.causes, batch.parents
        shared, version = self.shared, self.lane.version
        self.head = batch.head
        if not records:
            return 0
        # A short batch reached the head: what the projector writes meanwhile comes with
        # its notify (or the next poll), so no second read just to find nothing.
        self.more = len(records) >= shared.config.batch_max
        if self.offset is None:
            await self._choose_offset()
        offset = self.offset or 0
        expected = await self._fence()
        if self.watermark == 0 and (skip := self._already_stored(expected)):
            self.more = True
            return self._advance(skip, expected or "", skipped=True)
        jumped = self._jump_to_floor(batch.floor)
        started = time.perf_counter()
        sender = shared.sender
        sender.begin()
        spans = {}
        prefix, projection = shared.config.subject_prefix, shared.projection
        ack_every, last = shared.config.ack_every, len(records) - 1
        for i, record in enumerate(records):
            seq = record["seq"]
            position = record.get("position", 0)
            caused = _caused(record)
            event_id, occurred_at = causes.get(position, (None, None)) if caused else (None, None)
            change = change_from_record(record if not offset else {**record, "seq": seq + offset},
                                        projection=projection, version=version,
                                        event_id=event_id, occurred_at=occurred_at)
            msg_id = change_msg_id(projection, version, seq + offset)
            headers = {"Nats-Msg-Id": msg_id}
            if expected:
                headers["Nats-Expected-Last-Msg-Id"] = expected
            parent = parents.get(position) if caused else None
            if parent:
                spans[seq] = telemetry.start_span(parent, record, projection, version, msg_id, headers)
            await sender.send(change_subject(projection, record["kind"], prefix),
                              encode_change(change), headers,
                              ack=i == last or (i + 1) % ack_every == 0)
            expected = msg_id
        acks = await sender.flush()
        moved = await self._settle(records, acks, spans, started)
        if moved and batch.recorded_at is not None:
            self._record_delay(batch.recorded_at)
        return jumped + moved

    def _jump_to_floor(self, floor: int) -> int:
        """Move a watermark that is below the pruned floor up to it (the watermark file was lost)."""
        if self.watermark >= floor:
            return 0
        log.warning("watermark is below the pruned outbox; moving it up to the floor (published before)",
                    extra={"projection": self.shared.projection, "version": self.lane.version,
                           "watermark": self.watermark, "floor": floor})
        return self._advance(floor, self._msg_id(floor), skipped=True)

    def _record_delay(self, recorded_at: str) -> None:
        """Ingest's receipt of the round's oldest cause (``recorded_at``) -> JetStream's ack of its change."""
        delay_ms = (time.time() - datetime.fromisoformat(recorded_at).timestamp()) * 1000
        self.shared.stats.delay_ms = round(delay_ms, 3)
        telemetry.delay_ms.record(delay_ms, {"projection": self.shared.projection, "version": self.lane.version})

    def _already_stored(self, last_id: str | None) -> int:
        """The sequence the stream already holds for this version (0 if none)."""
        parsed = parse_msg_id(last_id)
        if parsed is None or parsed[0] != self.shared.projection or parsed[1] != self.lane.version:
            return 0
        return max(0, min(parsed[2] - (self.offset or 0), self.head))

    async def _settle(self, records: list[dict], acks: list[tuple[int, Ack]], spans: dict,
                      started: float) -> int:
        """Advance over what JetStream acknowledged; make sense of a failure."""
        # The fence makes an ack for message i vouch for every message before it.
        acked, failed, segment = -1, None, 0
        stored = duplicates = 0
        for i, ack in acks:
            if not ack.ok:
                failed = (i, ack)
                break
            if ack.duplicate:
                duplicates += i - segment + 1
            else:
                stored += i - segment + 1
            acked, segment = i, i + 1
        for seq, span in spans.items():
            if seq > records[0]["seq"] + acked:
                span.set_status(trace.StatusCode.ERROR, "not acknowledged")
            span.end()
        shared, stats, version = self.shared, self.shared.stats, self.lane.version
        attrs = {"projection": shared.projection, "version": version}
        telemetry.round_ms.record((time.perf_counter() - started) * 1000, attrs)
        if stored:
            telemetry.published.add(stored, attrs | {"outcome": "stored"})
        if duplicates:
            telemetry.published.add(duplicates, attrs | {"outcome": "duplicate"})
        stats.published += stored
        stats.duplicates += duplicates
        moved = 0
        if acked >= 0:
            if shared.kill_after is not None:
                shared.kill_after -= 1
                if shared.kill_after <= 0:
                    os.kill(os.getpid(), signal.SIGKILL)  # failpoint: acked, watermark not written
            seq = records[acked]["seq"]
            moved = self._advance(seq, self._msg_id(seq))
        if failed is None:
            return moved
        index, ack = failed
        if ack.err_code == WRONG_LAST_MSG_ID:
            _, _, last_id = (ack.error or "").partition("wrong last msg ID:")
            last_id = last_id.strip() or None
        else:  # no ack (timeout, reconnect) or another error: ask the stream how far it got
            last_id = await shared.stream_last()
        stored_upto = self._already_stored(last_id)
        if stored_upto > self.watermark:
            log.info("changes found in the stream; moving the watermark up to them",
                     extra={"projection": shared.projection, "version": version,
                            "to_seq": stored_upto, "stream_last": last_id})
            moved += self._advance(stored_upto, last_id or "", skipped=True)
            if ack.err_code == WRONG_LAST_MSG_ID:
                self.more = True  # go on from there at once
                return moved
        elif ack.err_code == WRONG_LAST_MSG_ID and stored_upto < self.watermark:
            # The stream's last change is not this one's predecessor (stream recreated, a
            # rollback, another writer): chain on to what is there instead of refusing forever.
            log.warning("stream's last change is not the expected predecessor; re-anchoring",
                        extra={"projection": shared.projection, "version": version,
                               "seq": records[index]["seq"], "stream_last": last_id})
            self._anchor = (last_id,)
        raise TransientError(
            f"JetStream did not store {shared.projection} v{version} changes from"
            f" {self.watermark + 1} on: {ack.error}")

    def _advance(self, seq: int, msg_id: str, *, skipped: bool = False) -> int:
        before = self.watermark
        if seq <= before:
            return 0
        if self._file is None:
            self._file = WatermarkFile(self.lane.path)
        self._file.write(seq, msg_id)
        self.watermark = seq
        if skipped:
            self.shared.stats.skipped += seq - before
        self.shared.progress_at = time.time()
        if self.lane.active:
            self.shared.stats.watermark = seq
        return seq - before



def failpoint_rounds(failpoint: str | None) -> int | None:
    """``changes_after_ack[:N]`` -> N (1 when absent); None for any other failpoint."""
    if not failpoint or not failpoint.startswith("changes_after_ack"):
        return None
    _, _, count = failpoint.partition(":")
    return int(count) if count.isdigit() else 1


def _caused(record: dict) -> bool:
    """Whether one log event caused the record (not a notice, a diff or a coalesced change)."""
    return record["kind"] not in NOTICE_KINDS and not record.get("diff") and not record.get("coalesced")
