"""The NATS connection every process uses: a client that survives bad frames, and reconnects.

Connections reconnect forever with a short back-off; a server that cannot be
reached at start-up raises :class:`~events.errors.TransientError` naming the
URL, so the CLI can exit 3 with a message that says what to start, and a
server that refuses the credentials raises :class:`~events.errors.ConfigError`.
Credentials travel in the URL (``nats://user:password@host:port``, quoted)
and never appear in a message (:func:`redact_url`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Callable
from urllib.parse import urlsplit

import nats
from nats.aio.client import Client
from nats.aio.subscription import Subscription
from nats.errors import ProtocolError
from nats.protocol.parser import MAX_CONTROL_LINE_SIZE, Parser

from events.errors import ConfigError, TransientError

from .urls import redact_url, server_urls, split_credentials, with_credentials

__all__ = ["FLEET_INBOX_PREFIX", "LOG_APPENDED_SUBJECT", "FleetClient", "connect", "hpub_frame",
           "redact_url", "server_urls", "split_credentials", "wait_for_server", "with_credentials"]

#: Core NATS subject the ingest worker pings after each commit (payload: the log head).
LOG_APPENDED_SUBJECT = "fleet.log.appended"

#: The fleet's replies and pull deliveries arrive under this prefix, not ``_INBOX``: a
#: producer or subscriber allowed ``_INBOX.>`` for its own replies cannot read them.
FLEET_INBOX_PREFIX = "_INBOX_fleet"

log = logging.getLogger(__name__)
_WHITESPACE = re.compile(rb"\s")


#: A tap receives ``(subject, reply, payload, raw_headers)`` straight from the parser.
Tap = Callable[[bytes, bytes, bytes, "bytes | None"], None]


class FleetParser(Parser):
    """nats-py's protocol parser, rewritten to split a read buffer in one pass.

    nats-py tries up to seven regular expressions per protocol line and
    then builds a ``Msg``, queues it and wakes a task per message: together
    ~25 µs a message, the ceiling of a Python consumer. This parser finds
    each line with one ``find``, splits it once and slices the payload out of
    the buffer it was read into. Messages for a *tapped* subscription id go
    to the tap as raw bytes with no ``Msg``, no queue and no task switch;
    every other message takes nats-py's normal path, so request/reply,
    JetStream API calls and subscriptions behave as before.
    """

    def __init__(self, nc: Client) -> None:
        self.taps: dict[int, Tap] = {}
        super().__init__(nc)

    def reset(self) -> None:
        super().reset()
        self._chunks: list[bytes] = []
        self._have = 0
        self._need = 0  # bytes the incomplete frame at the head of _chunks needs
        self._generation = getattr(self, "_generation", 0) + 1

    async def parse(self, data: bytes = b"") -> None:
        self._chunks.append(data)
        self._have += len(data)
        if self._have < self._need:
            return
        buf = b"".join(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        generation = self._generation
        pos, need = await self._parse(buf)
        if generation != self._generation:
            return  # the connection was reset while a callback ran: drop the old bytes
        rest = buf[pos:]
        self._chunks = [rest] if rest else []
        self._have = len(rest)
        self._need = need

    async def _parse(self, buf: bytes) -> tuple[int, int]:
        """Dispatch every complete frame in ``buf``; the offset left over and the bytes it needs."""
        nc = self.nc
        taps = self.taps
        size = len(buf)
        pos = 0
        tapped = 0
        try:
            while pos < size:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    if size - pos > MAX_CONTROL_LINE_SIZE:
                        raise ProtocolError("nats: control line too long")
                    return pos, 0
                op = buf[pos:pos + 4]
                if op == b"HMSG" or op[:3] == b"MSG":
                    args = buf[pos:end].split()
                    headers = op == b"HMSG"
                    if len(args) == (6 if headers else 5):
                        subject, sid, reply = args[1], args[2], args[3]
                    elif len(args) == (5 if headers else 4):
                        subject, sid, reply = args[1], args[2], b""
                    else:
                        raise ProtocolError("nats: malformed MSG")
                    total = int(args[-1])
                    header_len = int(args[-2]) if headers else 0
                    start = end + 2
                    stop = start + total
                    if stop + 2 > size:
                        return pos, stop + 2 - pos
                    hdr = buf[start:start + header_len] if header_len else None
                    payload = buf[start + header_len:stop]
                    pos = stop + 2
                    tap = taps.get(int(sid))
                    if tap is not None:
                        tap(subject, reply, payload, hdr)
                        tapped += 1
                    else:
                        await nc._process_msg(int(sid), subject, reply, payload, hdr)
                    continue
                line = buf[pos:end]
                pos = end + 2
                if op == b"PING":
                    await nc._process_ping()
                elif op == b"PONG":
                    await nc._process_pong()
                elif op[:3] == b"+OK":
                    pass
                elif op == b"-ERR":
                    await nc._process_err(line[4:].strip().decode().lower())
                elif op == b"INFO":
                    await nc._process_info(json.loads(line[4:]))
                else:
                    raise ProtocolError(f"nats: unknown protocol line {line[:40]!r}")
            return pos, 0
        finally:
            if tapped:
                nc.stats["in_msgs"] += tapped


class FleetClient(Client):
    """nats-py's client with :class:`FleetParser` and a cheaper header parser.

    ``tap(subject, callback)`` subscribes with a raw callback (see
    :data:`Tap`): the receive path of the ingest worker.

    Every canonical event carries a ``Nats-Msg-Id`` header, and nats-py's
    parser spends a generator per header name checking for whitespace.
    :meth:`_parse_header_lines` keeps its semantics: lines without a colon
    and names with non-ASCII bytes or whitespace are skipped; values are
    stripped and decoded with replacement.
    """

    def __init__(self) -> None:
        super().__init__()
        self._ps = FleetParser(self)

    async def tap(self, subject: str, callback: Tap) -> Subscription:
        """Subscribe ``callback`` to ``subject`` as a raw tap; unsubscribe as usual."""
        sub = await self.subscribe(subject)
        self._ps.taps[sub._id] = callback
        return sub

    async def publish_frames(self, frames: bytes, count: int, payload_bytes: int) -> None:
        """Send ``count`` ready-made ``PUB``/``HPUB`` frames (see :func:`hpub_frame`) at once.

        nats-py's ``publish`` costs a header encoding and a flush request per
        message; a change publisher sends thousands per round. The frames go
        to the same pending buffer, so ordering with other publishes holds,
        and the same limits apply (closed, draining, buffer full while
        reconnecting).
        """
        if self.is_closed:
            raise nats.errors.ConnectionClosedError
        if self.is_draining_pubs:
            raise nats.errors.ConnectionDrainingError
        if not self.is_connected and (
                self._max_pending_size <= 0
                or len(frames) + self._pending_data_size > self._max_pending_size):
            raise nats.errors.OutboundBufferLimitError
        self.stats["out_msgs"] += count
        self.stats["out_bytes"] += payload_bytes
        await self._send_command(frames)
        await self._flush_pending()

    def _remove_sub(self, sid: int, max_msgs: int = 0) -> None:
        self._ps.taps.pop(sid, None)
        super()._remove_sub(sid, max_msgs)

    @staticmethod
    def parse_headers(raw: bytes) -> dict[str, str]:
        """The header block of a raw frame (``NATS/1.0`` status line first) as a dict."""
        _, _, lines = raw.partition(b"\r\n")
        return FleetClient._parse_header_lines(lines)

    @staticmethod
    def _parse_header_lines(raw: bytes) -> dict[str, str]:
        out: dict[str, str] = {}
        for line in raw.split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if not sep:
                continue
            name = name.strip()
            if not name.isascii() or _WHITESPACE.search(name):
                continue
            out[name.decode()] = value.strip().decode("utf-8", "replace")
        return out


def hpub_frame(subject: str, reply: str, headers: dict[str, str], payload: bytes) -> bytes:
    """The ``HPUB`` protocol frame of one message (for :meth:`FleetClient.publish_frames`).

    ``subject`` and ``reply`` must be valid subjects (the caller's to check:
    they are usually built from a few known parts); a header that would break
    the frame (an empty name, whitespace or a colon in a name, CR or LF in a
    value) raises ``ValueError``.
    """
    lines = ["NATS/1.0\r\n"]
    for name, value in headers.items():
        if not name or _BAD_NAME.search(name) or _BREAKS_FRAME.search(value):
            raise ValueError(f"header {name!r}: {value!r} cannot go into a NATS frame")
        lines.append(f"{name}: {value}\r\n")
    lines.append("\r\n")
    hdr = "".join(lines).encode()
    return b"".join((f"HPUB {subject} {reply} {len(hdr)} {len(hdr) + len(payload)}\r\n".encode(),
                     hdr, payload, b"\r\n"))


_BREAKS_FRAME = re.compile(r"[\r\n]")
_BAD_NAME = re.compile(r"[\s:]")


async def connect(url: str | list[str], *, name: str, connect_timeout_secs: float = 5,
                  wait_for_server_secs: float = 0) -> Client:
    """Connect to NATS at ``url``, retrying reconnects forever once connected.

    ``url`` may carry credentials (``nats://user:password@host:port``); a
    list, or a comma-separated string, is a cluster's servers: the first
    connection goes to any one that answers, and reconnects ride out the loss
    of one. ``wait_for_server_secs`` keeps trying the
    first connection that long, for processes that start beside the server
    (the Procfile starts all at once). Raises TransientError when nothing
    answers, ConfigError when the server refuses the credentials.
    """
    if wait_for_server_secs:
        await wait_for_server(url, timeout_secs=wait_for_server_secs)
    return await _connect_once(url, name, connect_timeout_secs)


async def wait_for_server(url: str | list[str], *, timeout_secs: float) -> None:
    """Wait until something listens at ``url``; TransientError after ``timeout_secs``."""
    deadline = asyncio.get_running_loop().time() + timeout_secs
    while True:
        try:
            return await _probe(url, 2)
        except TransientError:
            if asyncio.get_running_loop().time() >= deadline:
                raise
            await asyncio.sleep(0.5)


async def _probe(url: str | list[str], timeout_secs: float) -> None:
    """Fail fast when nothing listens (nats-py retries a first connect forever); one server is enough."""
    servers = server_urls(url)
    errors: list[str] = []
    for server in servers:
        shown = redact_url(server)
        try:
            parsed = urlsplit(server)
            host, port = parsed.hostname or "127.0.0.1", parsed.port or 4222
        except ValueError as e:
            raise ConfigError(f"NATS URL {shown!r} is malformed: {e} - e.g. nats://127.0.0.1:4222") from e
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port),
                                               timeout_secs / len(servers))
        except (OSError, asyncio.TimeoutError) as e:
            errors.append(f"{shown}: {e!r}")
            continue
        writer.close()
        return
    where = redact_url(",".join(servers))
    raise TransientError(f"cannot reach NATS at {where}: {'; '.join(errors)} - start it with"
                         " `fleet nats` or set FLEET_NATS_URL")


def _is_auth_error(e: BaseException) -> bool:
    text = str(e).lower()
    return "authorization violation" in text or "authentication" in text or "user authentication" in text


async def _connect_once(url: str | list[str], name: str, connect_timeout_secs: float) -> Client:
    await _probe(url, connect_timeout_secs)
    servers = server_urls(url)
    plain = [split_credentials(u) for u in servers]
    user = next((u for _, u, _ in plain if u), None)
    password = next((p for _, u, p in plain if u), None)
    shown = redact_url(",".join(servers))

    async def on_error(e: Exception) -> None:
        log.warning("nats error", extra={"error": repr(e), "client": name})

    async def on_disconnect() -> None:
        log.info("nats disconnected", extra={"client": name})

    async def on_reconnect() -> None:
        log.info("nats reconnected", extra={"client": name})

    client = FleetClient()
    try:
        # allow_reconnect=False for the first connection to one server: nats-py then raises
        # the server's refusal (bad credentials) instead of retrying it until the timeout.
        await asyncio.wait_for(client.connect(
            [u for u, _, _ in plain],
            name=name,
            user=user,
            password=password,
            inbox_prefix=FLEET_INBOX_PREFIX,
            connect_timeout=connect_timeout_secs,
            allow_reconnect=len(servers) > 1,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
            pending_size=64 * 1024 * 1024,
        ), connect_timeout_secs * 3)
    except nats.errors.Error as e:
        await _abandon(client)
        if _is_auth_error(e):
            who = f"user {user!r}" if user else "a client without credentials"
            reason = str(e).removeprefix("nats: ").strip("'")
            raise ConfigError(
                f"NATS at {shown} refused {who} ({reason}) - check the"
                " user and password (in FLEET_NATS_URL or FLEET_NATS_USER/FLEET_NATS_PASSWORD;"
                " the embedded server's are in DATA_DIR/nats/auth.json)") from e
        raise TransientError(f"cannot reach NATS at {shown}: {e!r} - start it with `fleet nats`"
                             " or set FLEET_NATS_URL") from e
    except (OSError, asyncio.TimeoutError) as e:
        await _abandon(client)
        raise TransientError(
            f"cannot reach NATS at {shown}: {e!r} - start it with `fleet nats` or set FLEET_NATS_URL"
        ) from e
    client.options["allow_reconnect"] = True  # connected: from now on, reconnect forever
    return client


async def _abandon(client: Client) -> None:
    """Close a client whose first connection failed (its tasks would linger otherwise)."""
    try:
        await asyncio.wait_for(client.close(), 2)
    except Exception as e:  # best effort: it never connected
        log.debug("closing a failed connection", extra={"error": repr(e)})
