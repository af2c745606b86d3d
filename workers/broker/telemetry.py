"""OpenTelemetry for dramatiq actors, as a dramatiq middleware.

Per processed message: a CONSUMER span (child of the trace that enqueued the
message; the context travels in the message option ``trace_context``), an
actor duration histogram and an outcome counter. Works with any broker.
"""

from __future__ import annotations

import time
from typing import Any

from dramatiq.common import q_name
from dramatiq.middleware import Middleware
from opentelemetry import context, metrics, propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

__all__ = ["OpenTelemetryMiddleware", "TRACE_CONTEXT_OPTION"]

#: Message option carrying the W3C trace context of the enqueueing code.
TRACE_CONTEXT_OPTION = "trace_context"


class OpenTelemetryMiddleware(Middleware):
    """Traces and measures every message an actor processes.

    Metrics: ``fleet.dramatiq.actor.duration`` (ms histogram) and
    ``fleet.dramatiq.messages`` (counter), both with ``dramatiq.actor``,
    ``dramatiq.queue`` and ``outcome`` (``ok``, ``error``, ``skipped``).
    Providers default to the global ones configured by ``ops``.
    """

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self._tracer = trace.get_tracer(__name__, tracer_provider=tracer_provider)
        meter = metrics.get_meter(__name__, meter_provider=meter_provider)
        self._duration = meter.create_histogram(
            "fleet.dramatiq.actor.duration", unit="ms", description="Time an actor took on one message")
        self._messages = meter.create_counter(
            "fleet.dramatiq.messages", unit="{message}", description="Messages processed, by outcome")
        # Keyed by the proxy object: redeliveries of one message id may overlap.
        self._active: dict[int, tuple[trace.Span, object, float]] = {}

    def before_enqueue(self, broker, message, delay) -> None:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        if carrier:
            message.options[TRACE_CONTEXT_OPTION] = carrier

    def before_process_message(self, broker, message) -> None:
        parent = propagate.extract(message.options.get(TRACE_CONTEXT_OPTION) or {})
        span = self._tracer.start_span(
            f"process {message.actor_name}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "dramatiq",
                "messaging.operation.type": "process",
                "messaging.destination.name": q_name(message.queue_name),
                "messaging.message.id": message.message_id,
                "dramatiq.actor": message.actor_name,
                "dramatiq.retries": message.options.get("retries", 0),
            },
        )
        token = context.attach(trace.set_span_in_context(span, parent))
        self._active[id(message)] = (span, token, time.perf_counter())

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        self._finish(message, "ok" if exception is None else "error", exception)

    def after_skip_message(self, broker, message) -> None:
        self._finish(message, "skipped", None)

    def _finish(self, message, outcome: str, exception: BaseException | None) -> None:
        entry = self._active.pop(id(message), None)
        if entry is None:
            return
        span, token, started = entry
        attributes = {"dramatiq.actor": message.actor_name, "dramatiq.queue": q_name(message.queue_name),
                      "outcome": outcome}
        self._duration.record((time.perf_counter() - started) * 1000, attributes)
        self._messages.add(1, attributes)
        if exception is not None:
            span.record_exception(exception)
            span.set_status(Status(StatusCode.ERROR, type(exception).__name__))
        span.end()
        context.detach(token)
