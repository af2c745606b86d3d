"""JetStream streams graphfleet owns: their shape, created when missing, limits kept current."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

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
