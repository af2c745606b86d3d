"""Ingest's metrics and the spans that continue each producer's trace."""

from __future__ import annotations

import logging

from opentelemetry import metrics, propagate, trace

__all__ = ["gone", "record_commit", "rewinds", "trace_events"]

log = logging.getLogger("workers.ingest.consumer")
tracer = trace.get_tracer("workers.ingest.consumer")
meter = metrics.get_meter("workers.ingest.consumer")
_events = meter.create_counter("fleet.ingest.events", unit="{event}",
                               description="Events handled by ingest, by outcome")
_commit_ms = meter.create_histogram("fleet.ingest.batch.commit", unit="ms",
                                    description="Latency of one batch commit")
rewinds = meter.create_counter("fleet.ingest.rewinds", unit="{rewind}",
                               description="Consumer rewinds after deliveries lost in flight")
gone = meter.create_counter(
    "fleet.ingest.gone", unit="{message}",
    description="Stream messages dropped (stream limits, deletes) before ingest read them")


def record_commit(result, elapsed_ms: float) -> None:
    """Count one committed batch (a :class:`~events.log.CommitResult`) by outcome."""
    _commit_ms.record(elapsed_ms)
    _events.add(result.appended, {"outcome": "appended"})
    if result.duplicates:
        _events.add(result.duplicates, {"outcome": "duplicate"})
    if result.quarantined:
        _events.add(result.quarantined, {"outcome": "quarantined"})
        log.warning("input quarantined", extra={"count": result.quarantined, "head": result.head})


def trace_events(traced: list[tuple[dict[str, str], str]], head: int) -> None:
    """Continue the trace of every event that arrived with a ``traceparent``."""
    for headers, subject in traced:
        parent = propagate.extract(headers)
        span = tracer.start_span("sdlc.ingest", context=parent, kind=trace.SpanKind.CONSUMER)
        span.set_attribute("messaging.message.id", headers.get("Nats-Msg-Id", ""))
        span.set_attribute("messaging.destination.name", subject)
        span.set_attribute("fleet.log.head", head)
        span.end()
