"""JetStream streams graphfleet owns: their shape, created when missing, limits kept current.

NATS errors are translated here: JetStream not answering (a server starting
or restarting, JetStream off) is a :class:`~events.errors.TransientError`
worth retrying, a refusal (a permission, a clash with another stream) a
:class:`~events.errors.PermanentError`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

from events.errors import PermanentError, TransientError

__all__ = ["StreamSpec", "ensure_stream"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class StreamSpec:
    """The shape of a JetStream stream graphfleet owns."""

    name: str
    subjects: tuple[str, ...]
    duplicate_window_secs: float = 120
    max_age_secs: float = 0
    max_bytes: int = -1
    max_msg_size: int = -1
    #: copies kept by a JetStream cluster (FLEET_STREAM_REPLICAS; 1 on a single server)
    replicas: int = 1
    #: refuse deleting messages and purging the stream (the LOG stream: a replica's source of truth)
    deny_delete: bool = False
    deny_purge: bool = False


async def ensure_stream(js: JetStreamContext, spec: StreamSpec) -> None:
    """Create the stream when missing; update its limits when they changed."""
    try:
        await _ensure(js, spec)
    except ServiceUnavailableError as e:
        raise TransientError(f"JetStream is not available for stream {spec.name} ({e.description})"
                             " - is the server starting, or running without -js?") from e
    except APIError as e:
        raise PermanentError(f"JetStream refused stream {spec.name} {list(spec.subjects)}:"
                             f" {e.description} (code {e.err_code})") from e
    except (nats.errors.TimeoutError, asyncio.TimeoutError, nats.errors.NoRespondersError,
            nats.errors.ConnectionClosedError, nats.errors.ConnectionReconnectingError) as e:
        raise TransientError(f"JetStream did not answer for stream {spec.name} ({e!r}) - is the"
                             " server starting or restarting, or running without JetStream?") from e


async def _ensure(js: JetStreamContext, spec: StreamSpec) -> None:
    config = StreamConfig(
        name=spec.name,
        subjects=list(spec.subjects),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        duplicate_window=spec.duplicate_window_secs,
        max_age=spec.max_age_secs,
        max_bytes=spec.max_bytes,
        max_msg_size=spec.max_msg_size,
        num_replicas=spec.replicas,
        deny_delete=spec.deny_delete,
        deny_purge=spec.deny_purge,
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
        or (current.num_replicas or 1) != config.num_replicas
        or bool(current.deny_delete) != config.deny_delete
        or bool(current.deny_purge) != config.deny_purge
    ):
        if current.deny_delete and not config.deny_delete or current.deny_purge and not config.deny_purge:
            # JetStream never lifts these once set; asking would fail on every start.
            config.deny_delete = config.deny_delete or bool(current.deny_delete)
            config.deny_purge = config.deny_purge or bool(current.deny_purge)
        await js.update_stream(config)
        log.info("stream updated", extra={"stream": spec.name, "replicas": spec.replicas})
