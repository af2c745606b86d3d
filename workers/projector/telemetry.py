"""The projector's metrics, the rebuild wrapped in a span with progress gauges, apply spans."""

from __future__ import annotations

from pathlib import Path

from opentelemetry import metrics, propagate, trace

from events.log import EventLog
from projections.model.ontology import NAME
from projections.versions.rebuild import RebuildProgress, RebuildResult, rebuild

__all__ = ["batch_ms", "events", "lag", "pruned", "run_rebuild", "trace_applied"]

tracer = trace.get_tracer("workers.projector.loop")
meter = metrics.get_meter("workers.projector.loop")
events = meter.create_counter("fleet.projector.events", unit="{event}",
                              description="Log entries handled by the projector, by outcome")
batch_ms = meter.create_histogram("fleet.projector.batch.duration", unit="ms",
                                  description="Latency of one projector batch (read, apply, commit)")
lag = meter.create_gauge("fleet.projector.lag", unit="{event}",
                         description="Log head minus the active version's checkpoint")
_rebuild_position = meter.create_gauge("fleet.projection.rebuild.position", unit="{event}",
                                       description="Log position a running rebuild has reached")
_rebuild_rate = meter.create_gauge("fleet.projection.rebuild.rate", unit="{event}/s",
                                   description="Events per second of a running rebuild")
pruned = meter.create_counter("fleet.changes.outbox.pruned", unit="{change}",
                              description="Published outbox records deleted by the projector")


def run_rebuild(log_path: Path, projections_dir: Path, **kwargs) -> RebuildResult:
    """:func:`projections.versions.rebuild.rebuild` with a span and progress metrics."""
    user_progress = kwargs.pop("progress", None)

    def progress(p: RebuildProgress) -> None:
        attrs = {"projection": NAME, "version": p.version, "phase": p.phase}
        _rebuild_position.set(p.position, attrs)
        _rebuild_rate.set(p.events_per_sec, attrs)
        if user_progress is not None:
            user_progress(p)

    with tracer.start_as_current_span("projection.rebuild") as span:
        result = rebuild(log_path, projections_dir, progress=progress, **kwargs)
        span.set_attribute("projection.version", result.version)
        span.set_attribute("projection.position", result.position)
        span.set_attribute("projection.resumed_from", result.resumed_from)
        return result


def trace_applied(event_log: EventLog, first: int, last: int, version: int | None) -> None:
    """Continue the trace of each traced event in the batch with an apply span."""
    for position, traceparent in event_log.traceparents(first, last).items():
        parent = propagate.extract({"traceparent": traceparent})
        span = tracer.start_span("projection.apply", context=parent)
        span.set_attribute("fleet.log.position", position)
        span.set_attribute("projection.version", version or 0)
        span.end()
