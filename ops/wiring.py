"""Build the workers' configuration objects from :class:`~ops.settings.Settings`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from events.log import EventLog
from workers.ingest.config import IngestConfig
from workers.ingest.writer import BatchWriter, WriterProcess
from workers.natsio.streams import StreamSpec

from .settings import Settings

if TYPE_CHECKING:
    from nats.aio.client import Client

    from workers.shipper.replica import ReplicaConfig
    from workers.shipper.shipper import ShipConfig

    from workers.changefeed.publisher import ChangePublisher
    from workers.projector.loop import ProjectorConfig
    from workers.projector.runtime import RuntimeConfig

__all__ = ["change_publisher", "graph_stream", "ingest_config", "lease_key", "log_stream", "log_subject",
           "log_writer", "open_log", "projector_config", "replica_config", "runtime_config", "sdlc_stream", "ship_config"]


def sdlc_stream(settings: Settings) -> StreamSpec:
    """The SDLC stream as the settings shape it."""
    return StreamSpec(
        name=settings.stream,
        subjects=(f"{settings.subject_prefix}.>",),
        duplicate_window_secs=settings.dedup_window_secs,
        max_age_secs=settings.stream_max_age_secs,
        max_bytes=settings.stream_max_bytes,
        replicas=settings.stream_replicas,
    )


def ingest_config(settings: Settings) -> IngestConfig:
    """The ingest worker's configuration."""
    return IngestConfig(
        stream=sdlc_stream(settings),
        durable=settings.ingest_durable,
        batch_max=settings.ingest_batch_max,
        max_event_bytes=settings.max_event_bytes,
        ack_wait_secs=settings.ingest_ack_wait_secs,
        inflight_bytes=settings.ingest_inflight_bytes,
        failpoint=settings.failpoint,
    )


def open_log(settings: Settings, *, readonly: bool = False) -> EventLog:
    """The immutable log under the data directory."""
    return EventLog(settings.log_path, sync=settings.log_sync, readonly=readonly)


def log_writer(settings: Settings) -> BatchWriter | WriterProcess:
    """The log's single writer, in a child process unless FLEET_INGEST_WRITER=thread."""
    if settings.ingest_writer == "process":
        return WriterProcess(settings.log_path, sync=settings.log_sync, consumer=settings.ingest_durable)
    return BatchWriter(open_log(settings), settings.ingest_durable)


def projector_config(settings: Settings, *, auto_rebuild: bool, batch_max: int | None = None,
                     poll_interval_ms: int | None = None) -> "ProjectorConfig":
    """The projector's configuration from the settings (a CLI option may override two of them)."""
    from workers.projector.loop import ProjectorConfig

    return ProjectorConfig(batch_max=batch_max or settings.projector_batch_max,
                           poll_interval_ms=poll_interval_ms or settings.projector_poll_ms,
                           auto_rebuild=auto_rebuild, diff_max=settings.changes_diff_max,
                           rebuild_budget_bytes=settings.fold_budget_mb << 20,
                           catchup_lag=settings.catchup_lag)


def runtime_config(settings: Settings, process_name: str = "worker") -> "RuntimeConfig":
    """The worker process's runtime configuration."""
    from workers.projector.runtime import RuntimeConfig

    return RuntimeConfig(
        log_path=settings.log_path,
        projections_dir=settings.projections_dir,
        nats_url=settings.nats_url,
        projector=projector_config(settings, auto_rebuild=False),
        poll_interval_secs=settings.projector_poll_ms / 1000,
        heartbeat_interval_secs=settings.heartbeat_interval_secs,
        process_name=process_name,
    )


def graph_stream(settings: Settings) -> StreamSpec:
    """The GRAPH stream as the settings shape it."""
    return StreamSpec(
        name=settings.graph_stream,
        subjects=(f"{settings.graph_subject_prefix}.>",),
        duplicate_window_secs=settings.dedup_window_secs,
        max_age_secs=settings.changes_max_age_secs,
        max_bytes=settings.changes_max_bytes,
        replicas=settings.stream_replicas,
    )


def log_stream(settings: Settings) -> StreamSpec:
    """The LOG stream: every committed log row, replicated, never deleted or purged."""
    return StreamSpec(
        name=settings.log_stream,
        subjects=(log_subject(settings),),
        duplicate_window_secs=settings.dedup_window_secs,
        replicas=settings.stream_replicas,
        deny_delete=True,
        deny_purge=True,
    )


def log_subject(settings: Settings) -> str:
    """The subject shipped rows travel on."""
    return f"fleet.logship.{settings.log_stream}"


def lease_key(settings: Settings) -> str:
    """The writer lease's key: one writer per SDLC stream and ingest consumer."""
    return f"{settings.stream}.{settings.ingest_durable}"


def ship_config(settings: Settings) -> "ShipConfig":
    """The log shipper's configuration."""
    from workers.shipper.shipper import ShipConfig

    return ShipConfig(stream=log_stream(settings), subject=log_subject(settings),
                      consumer=settings.ingest_durable, poll_interval_ms=settings.projector_poll_ms,
                      failpoint=settings.failpoint)


def replica_config(settings: Settings) -> "ReplicaConfig":
    """``fleet replica``'s configuration: the LOG stream, appended to the data directory's log."""
    from workers.shipper.replica import ReplicaConfig

    return ReplicaConfig(stream=log_stream(settings), subject=log_subject(settings),
                         consumer=settings.ingest_durable, log_sync=settings.log_sync,
                         batch_max=settings.projector_batch_max)


def change_publisher(nc: "Client", settings: Settings, *, projection: str = "graph",
                     batch_max: int | None = None, poll_ms: int | None = None) -> "ChangePublisher":
    """The change publisher of ``projection`` configured by ``settings``."""
    from workers.changefeed.publisher import ChangePublisher, ChangesConfig

    config = ChangesConfig(
        batch_max=batch_max or settings.changes_batch_max,
        poll_interval_ms=poll_ms or settings.changes_poll_interval_ms,
        subject_prefix=settings.graph_subject_prefix,
        failpoint=settings.failpoint,
    )
    return ChangePublisher(nc, settings.projections_dir, settings.log_path, projection=projection,
                           stream=graph_stream(settings), config=config)

