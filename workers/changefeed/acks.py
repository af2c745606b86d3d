"""Pipelined JetStream publishing that tells which message each ack belongs to.

:class:`workers.natsio.publish.Publisher` counts acks; the change publisher needs
the outcome of particular messages of a round (stored, duplicate, or the
server's error such as ``wrong last msg ID``) to advance its watermark over
exactly what JetStream holds. Only the messages sent with ``ack=True`` ask
for an acknowledgement: with the change publisher's fence (every message
names its predecessor), an ack for message *n* vouches for every message
before it, so asking for one ack per few hundred messages and for the last
of a round halves the traffic without losing precision. Each round gets its
own reply token, so a late ack from an earlier round is never mistaken for
one of the current round.

Messages leave as ready-made protocol frames (:func:`workers.natsio.client.hpub_frame`),
pushed to the connection every ``push_bytes`` of frames, before any wait for
acks, and at :meth:`AckedSender.flush`: nats-py's ``publish`` would encode
the headers generically and ask its flusher for a write per message.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import msgspec
from nats.aio.client import _validate_subject
from nats.aio.msg import Msg
from nats.errors import MaxPayloadError

from workers.natsio.client import FleetClient, hpub_frame

__all__ = ["Ack", "AckedSender"]


class _ApiError(msgspec.Struct):
    code: int = 0
    err_code: int = 0
    description: str = ""


class _PubAck(msgspec.Struct):
    stream: str = ""
    seq: int = 0
    duplicate: bool = False
    error: _ApiError | None = None


_decode_ack = msgspec.json.Decoder(_PubAck).decode

#: JetStream's error code for a failed ``Nats-Expected-Last-Msg-Id`` check
WRONG_LAST_MSG_ID = 10070


@dataclass(frozen=True, slots=True)
class Ack:
    """The outcome of one message: stored (``stream_seq``), duplicate, or ``error``."""

    stream_seq: int = 0
    duplicate: bool = False
    error: str | None = None
    err_code: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


_TIMEOUT = Ack(error="no acknowledgement (timed out or lost on a reconnect)")


class AckedSender:
    """Publish with up to ``window`` unacknowledged messages; collect every ack."""

    def __init__(self, nc: FleetClient, *, window: int = 10_000, ack_timeout_secs: float = 5,
                 push_bytes: int = 64 * 1024) -> None:
        self._nc = nc
        self._window = window
        self._ack_timeout = ack_timeout_secs
        self._push_bytes = push_bytes
        self._frames: list[bytes] = []
        self._frame_bytes = 0
        self._payload_bytes = 0
        self._subjects: set[str] = set()  # validated once each
        self._prefix = nc.new_inbox()
        self._sub = None
        self._round = 0
        self._acks: dict[int, Ack | None] = {}
        self._sent = 0
        self._missing = 0
        self._room = asyncio.Event()
        self._done = asyncio.Event()

    async def _on_ack(self, msg: Msg) -> None:
        _, _, token = msg.subject.rpartition(".")
        round_no, _, index = token.partition("-")
        if int(round_no) != self._round:
            return
        i = int(index)
        if self._acks.get(i, 0) is not None:  # unknown index (0) or already answered
            return
        self._acks[i] = _parse(msg)
        self._missing -= 1
        if self._missing < self._window:
            self._room.set()
        if self._missing == 0:
            self._done.set()

    def begin(self) -> None:
        """Start a round: acks of earlier rounds are ignored from now on."""
        self._round += 1
        self._acks = {}
        self._frames, self._frame_bytes, self._payload_bytes = [], 0, 0  # an abandoned round's
        self._sent = 0
        self._missing = 0
        self._done.set()
        self._room.set()

    async def send(self, subject: str, payload: bytes, headers: dict[str, str], *,
                   ack: bool = True) -> None:
        """Queue one message of the round (asking for an ack if ``ack``).

        Waits only while ``window`` acks are outstanding (after pushing what
        is queued, so that those acks can come).
        """
        if len(payload) > self._nc.max_payload:
            raise MaxPayloadError(f"{subject}: {len(payload)} bytes, the server takes"
                                  f" {self._nc.max_payload}")
        if subject not in self._subjects:
            _validate_subject(subject)
            self._subjects.add(subject)
        index = self._sent
        self._sent += 1
        reply = ""
        if ack:
            if self._sub is None:
                self._sub = await self._nc.subscribe(self._prefix + ".*", cb=self._on_ack,
                                                     pending_msgs_limit=-1, pending_bytes_limit=-1)
            if self._missing >= self._window:
                await self._push()
            while self._missing >= self._window:
                self._room.clear()
                try:
                    await asyncio.wait_for(self._room.wait(), self._ack_timeout)
                except asyncio.TimeoutError:
                    break  # flush() reports the missing acks
            self._acks[index] = None
            self._missing += 1
            self._done.clear()
            reply = f"{self._prefix}.{self._round}-{index}"
        frame = hpub_frame(subject, reply, headers, payload)
        self._frames.append(frame)
        self._frame_bytes += len(frame)
        self._payload_bytes += len(payload)
        if self._frame_bytes >= self._push_bytes:
            await self._push()

    async def _push(self) -> None:
        """Hand the queued frames to the connection."""
        if not self._frames:
            return
        frames, count, payload_bytes = b"".join(self._frames), len(self._frames), self._payload_bytes
        self._frames, self._frame_bytes, self._payload_bytes = [], 0, 0
        await self._nc.publish_frames(frames, count, payload_bytes)

    async def flush(self) -> list[tuple[int, Ack]]:
        """Send what is queued; wait for the round's acks (up to the ack timeout).

        Returns ``(index, ack)`` in send order.
        """
        await self._push()
        if self._missing:
            try:
                await asyncio.wait_for(self._done.wait(), self._ack_timeout)
            except asyncio.TimeoutError:
                pass
        acks = [(i, a if a is not None else _TIMEOUT) for i, a in self._acks.items()]
        self._round += 1  # whatever arrives later belongs to no round
        return acks

    async def close(self) -> None:
        """Stop listening for acks."""
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:  # noqa: BLE001 - closing on a dead connection is fine
                pass
            self._sub = None


def _parse(msg: Msg) -> Ack:
    headers = msg.headers
    if headers and headers.get("Status") == "503":
        return Ack(error="no JetStream stream listens on this subject (503)", err_code=503)
    try:
        ack = _decode_ack(msg.data)
    except msgspec.DecodeError:
        return Ack(error=f"unreadable ack {msg.data[:200]!r}")
    if ack.error is not None:
        return Ack(error=ack.error.description or f"error {ack.error.err_code}",
                   err_code=ack.error.err_code)
    return Ack(stream_seq=ack.seq, duplicate=ack.duplicate)
