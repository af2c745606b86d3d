"""Build the workers' configuration objects from :class:`~ops.settings.Settings`."""

from __future__ import annotations

from events.log import EventLog
from workers.ingest import IngestConfig
from workers.log_writer import BatchWriter, WriterProcess
from workers.nats import StreamSpec

from .settings import Settings

__all__ = ["ingest_config", "log_writer", "open_log", "sdlc_stream"]


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
