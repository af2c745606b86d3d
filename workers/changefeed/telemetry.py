"""The change publisher's metrics, and the producer spans that continue each causing event's trace."""

from __future__ import annotations

from opentelemetry import metrics, propagate, trace

__all__ = ["delay_ms", "published", "round_ms", "start_span"]

tracer = trace.get_tracer("workers.changefeed.publisher")
meter = metrics.get_meter("workers.changefeed.publisher")
published = meter.create_counter("fleet.changes.published", unit="{change}",
                                  description="Changes acknowledged by JetStream, by outcome")
round_ms = meter.create_histogram("fleet.changes.publish.duration", unit="ms",
                                   description="Latency of one publish round (read, publish, all acks)")
delay_ms = meter.create_histogram("fleet.changes.delay", unit="ms",
                                   description="Log commit of a round's oldest causing event -> JetStream's"
                                               " ack of its change")


def start_span(traceparent: str, record: dict, projection: str, version: int, msg_id: str,
                headers: dict[str, str]):
    """A producer span continuing the causing event's trace; its context goes in ``headers``."""
    parent = propagate.extract({"traceparent": traceparent})
    span = tracer.start_span("graph.change publish", context=parent, kind=trace.SpanKind.PRODUCER,
                             attributes={"messaging.system": "nats",
                                         "messaging.message.id": msg_id,
                                         "fleet.projection": projection,
                                         "fleet.projection.version": version,
                                         "fleet.change.seq": record["seq"],
                                         "fleet.change.kind": record["kind"],
                                         "fleet.log.position": record.get("position", 0)})
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    headers.update(carrier)
    if "traceparent" not in headers:  # no SDK installed: pass the event's context on as it is
        headers["traceparent"] = traceparent
    return span
