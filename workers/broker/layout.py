"""Where the JetStream broker keeps things: subjects, consumer names, configs.

Pure functions from names and settings to NATS values, plus the two calls
that declare them. One stream with work-queue retention (an acked message is
deleted) takes ``<prefix>.>``; queue ``q`` lives on ``<prefix>.q``, its delay
queue on ``<prefix>.q.DQ`` and its dead letters on ``<prefix>.q.XQ``.
"""

from __future__ import annotations

import json
import logging

from dramatiq.message import Message
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from events.errors import ConfigError

__all__ = [
    "ACK",
    "NAK",
    "WPI",
    "consumer_config",
    "dedup_id",
    "durable_name",
    "ensure_consumer",
    "ensure_stream",
    "pull_request",
    "queue_subject",
    "stream_config",
]

log = logging.getLogger(__name__)

#: JetStream ack protocol payloads: ack, nak (redeliver now), work in progress.
ACK, NAK, WPI = b"+ACK", b"-NAK", b"+WPI"


def queue_subject(prefix: str, queue_name: str) -> str:
    """The subject that carries ``queue_name`` (``dramatiq.default.DQ``)."""
    if any(not token for token in queue_name.split(".")):
        raise ConfigError(f"queue name {queue_name!r} has an empty subject token - drop the repeated dots")
    return f"{prefix}.{queue_name}"


def durable_name(queue_name: str) -> str:
    """The durable consumer of ``queue_name``; NATS names cannot hold dots."""
    return queue_name.replace(".", "_")


def dedup_id(message: Message) -> str:
    """The ``Nats-Msg-Id`` of one enqueue of ``message``.

    A retry or a DQ -> queue move re-enqueues the same message id, so the
    target queue and retry count are part of the key; a publish repeated after
    a crash (same queue, same retries) is still dropped as a duplicate.
    """
    return f"{message.message_id}:{message.queue_name}:{message.options.get('retries', 0)}"


def pull_request(batch: int, expires_secs: float) -> bytes:
    """The body of a JetStream ``CONSUMER.MSG.NEXT`` request."""
    return json.dumps({"batch": batch, "expires": int(expires_secs * 1e9)}).encode()


def stream_config(stream: str, prefix: str, *, replicas: int, duplicate_window_secs: float) -> StreamConfig:
    """The broker's stream: work-queue retention, file storage, per-message TTL allowed."""
    return StreamConfig(
        name=stream,
        subjects=[f"{prefix}.>"],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=duplicate_window_secs,
        allow_msg_ttl=True,
    )


def consumer_config(prefix: str, queue_name: str, *, ack_wait_secs: float,
                    max_ack_pending: int) -> ConsumerConfig:
    """The durable pull consumer of one queue: explicit ack, unlimited redeliveries."""
    durable = durable_name(queue_name)
    return ConsumerConfig(
        name=durable,
        durable_name=durable,
        description=f"dramatiq queue {queue_name}",
        filter_subject=queue_subject(prefix, queue_name),
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait_secs,
        # dramatiq's Retries middleware counts failures; a redelivery after a
        # crash must never dead-letter on its own.
        max_deliver=-1,
        max_ack_pending=max_ack_pending,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or update it; refuse one with another retention policy."""
    try:
        info = await js.stream_info(config.name)
    except NotFoundError:
        await js.add_stream(config)
        log.info("stream created", extra={"stream": config.name, "subjects": config.subjects})
        return
    if info.config.retention != RetentionPolicy.WORK_QUEUE:
        raise ConfigError(f"stream {config.name} exists with retention"
                          f" {getattr(info.config.retention, 'value', info.config.retention)};"
                          " the dramatiq broker needs workqueue - pass another stream name")
    if not info.config.allow_msg_ttl or info.config.duplicate_window != config.duplicate_window:
        await js.update_stream(config)
        log.info("stream updated", extra={"stream": config.name})


async def ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
    """Create or update a durable consumer (idempotent)."""
    await js.add_consumer(stream, config)
