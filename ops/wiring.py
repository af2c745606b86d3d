"""Build the workers' configuration objects from :class:`~ops.settings.Settings`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from events.log import EventLog
from workers.ingest import IngestConfig
from workers.log_writer import BatchWriter, WriterProcess
from workers.nats import StreamSpec

from .settings import Settings

if TYPE_CHECKING:
    from workers.runtime import RuntimeConfig

__all__ = ["change_publisher_factory", "ingest_config", "log_writer", "open_log",
           "runtime_config", "sdlc_stream"]


def sdlc_stream(settings: Settings) -> StreamSpec:
    """The SDLC stream as the settings shape it."""
    return StreamSpec(
        name=settings.stream,
        subjects=(f"{settings.subject_prefix}.>",),
        duplicate_window_secs=settings.dedup_window_secs,
        max_age_secs=settings.stream_max_age_secs,
        max_bytes=settings.stream_max_bytes,
    )


def ingest_config(settings: Settings) -> IngestConfig:
    """The ingest worker's configuration."""
    return IngestConfig(
        stream=sdlc_stream(settings),
        durable=settings.ingest_durable,
        batch_max=settings.ingest_batch_max,
        max_wait_ms=settings.ingest_max_wait_ms,
        max_event_bytes=settings.max_event_bytes,
        ack_wait_secs=settings.ingest_ack_wait_secs,
        failpoint=settings.failpoint,
    )


def open_log(settings: Settings, *, readonly: bool = False) -> EventLog:
    """The immutable log under the data directory."""
    return EventLog(settings.log_path, sync=settings.log_sync, readonly=readonly)


def log_writer(settings: Settings) -> BatchWriter | WriterProcess:
    """The log's single writer, in a child process unless FLEET_INGEST_WRITER=thread."""
    if settings.ingest_writer == "process":
        return WriterProcess(settings.log_path, sync=settings.log_sync, consumer=settings.ingest_durable,
                             max_event_bytes=settings.max_event_bytes)
    return BatchWriter(open_log(settings), settings.ingest_durable, settings.max_event_bytes)


def runtime_config(settings: Settings) -> "RuntimeConfig":
    """The worker process's runtime configuration."""
    from workers.projector import ProjectorConfig
    from workers.runtime import RuntimeConfig

    return RuntimeConfig(
        log_path=settings.log_path,
        projections_dir=settings.projections_dir,
        nats_url=settings.nats_url,
        projector=ProjectorConfig(batch_max=settings.projector_batch_max,
                                  poll_interval_ms=settings.projector_poll_ms, auto_rebuild=False),
        poll_interval_secs=settings.projector_poll_ms / 1000,
        heartbeat_interval_secs=settings.heartbeat_interval_secs,
    )


def change_publisher_factory(settings: Settings):
    """A function making the change publisher on a connected NATS client."""
    from .cli.changes import change_publisher

    return lambda nc: change_publisher(nc, settings)
