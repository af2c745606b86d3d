"""NATS connection and JetStream stream set-up shared by every process.

Connections reconnect forever with a short back-off; a server that cannot be
reached at start-up raises :class:`~events.errors.TransientError` naming the
URL, so the CLI can exit 3 with a message that says what to start.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from urllib.parse import urlparse

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from events.errors import TransientError

__all__ = ["LOG_APPENDED_SUBJECT", "FleetClient", "StreamSpec", "connect", "ensure_stream",
           "wait_for_server"]

#: Core NATS subject the ingest worker pings after each commit (payload: the log head).
LOG_APPENDED_SUBJECT = "fleet.log.appended"

log = logging.getLogger(__name__)
_WHITESPACE = re.compile(rb"\s")


class FleetClient(Client):
    """nats-py's client with a cheaper header parser.

    Every canonical event carries a ``Nats-Msg-Id`` header, and nats-py's
    parser spends a generator per header name checking for whitespace: a
    third of the receive loop's time at 100k messages/s. Same semantics:
    lines without a colon and names with non-ASCII bytes or whitespace are
    skipped; values are stripped and decoded with replacement.
    """

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


@dataclass(frozen=True, kw_only=True)
class StreamSpec:
    """The shape of a JetStream stream graphfleet owns."""

    name: str
    subjects: tuple[str, ...]
    duplicate_window_secs: float = 120
    max_age_secs: float = 0
    max_bytes: int = -1
    max_msg_size: int = -1


async def connect(url: str, *, name: str, connect_timeout_secs: float = 5,
                  wait_for_server_secs: float = 0) -> Client:
    """Connect to NATS at ``url``, retrying reconnects forever once connected.

    ``wait_for_server_secs`` keeps trying the first connection that long, for
    processes that start beside the server (the Procfile starts all at once).
    """
    if wait_for_server_secs:
        await wait_for_server(url, timeout_secs=wait_for_server_secs)
    return await _connect_once(url, name, connect_timeout_secs)


async def wait_for_server(url: str, *, timeout_secs: float) -> None:
    """Wait until something listens at ``url``; TransientError after ``timeout_secs``."""
    deadline = asyncio.get_running_loop().time() + timeout_secs
    while True:
        try:
            return await _probe(url, 2)
        except TransientError:
            if asyncio.get_running_loop().time() >= deadline:
                raise
            await asyncio.sleep(0.5)


async def _probe(url: str, timeout_secs: float) -> None:
    """Fail fast when nothing listens: nats-py retries a first connect forever."""
    parsed = urlparse(url)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout_secs
        )
    except (OSError, asyncio.TimeoutError) as e:
        raise TransientError(
            f"cannot reach NATS at {url}: {e!r} - start it with `fleet nats` or set FLEET_NATS_URL"
        ) from e
    writer.close()


async def _connect_once(url: str, name: str, connect_timeout_secs: float) -> Client:
    await _probe(url, connect_timeout_secs)

    async def on_error(e: Exception) -> None:
        log.warning("nats error", extra={"error": repr(e), "client": name})

    async def on_disconnect() -> None:
        log.info("nats disconnected", extra={"client": name})

    async def on_reconnect() -> None:
        log.info("nats reconnected", extra={"client": name})

    try:
        client = FleetClient()
        await asyncio.wait_for(client.connect(
            url,
            name=name,
            connect_timeout=connect_timeout_secs,
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
            pending_size=64 * 1024 * 1024,
        ), connect_timeout_secs * 3)
        return client
    except (OSError, asyncio.TimeoutError, nats.errors.NoServersError, nats.errors.TimeoutError) as e:
        raise TransientError(
            f"cannot reach NATS at {url}: {e!r} - start it with `fleet nats` or set FLEET_NATS_URL"
        ) from e


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> None:
    """Create the stream when missing; update its limits when they changed."""
    config = StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        duplicate_window=spec.duplicate_window_secs,
        max_age=spec.max_age_secs,
        max_bytes=spec.max_bytes,
        max_msg_size=spec.max_msg_size,
    )
    try:
        info = await js.stream_info(spec.name)
    except NotFoundError:
        await js.add_stream(config)
        log.info("stream created", extra={"stream": spec.name, "subjects": list(spec.subjects)})
        return
    current = info.config
    if (
        current.duplicate_window != config.duplicate_window
        or (current.max_age or 0) != config.max_age
        or (current.max_bytes or -1) != config.max_bytes
    ):
        await js.update_stream(config)
        log.info("stream limits updated", extra={"stream": spec.name})
