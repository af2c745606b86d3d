"""The OpenTelemetry dramatiq middleware: spans, trace propagation, actor metrics."""

from __future__ import annotations

import dramatiq
from dramatiq import Worker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Retries, default_middleware
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from workers.broker.telemetry import OpenTelemetryMiddleware


def test_actor_spans_join_the_enqueuing_trace_and_metrics_count_outcomes():
    """A processed message is a child span of the sender's trace; duration and outcomes are recorded."""
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    middleware = [m() for m in default_middleware if m is not Retries] + [Retries(max_retries=0)]
    broker = StubBroker(middleware=middleware)
    broker.add_middleware(OpenTelemetryMiddleware(tracer_provider=tracer_provider,
                                                  meter_provider=MeterProvider(metric_readers=[reader])))

    @dramatiq.actor(broker=broker, queue_name="q")
    def works():
        pass

    @dramatiq.actor(broker=broker, queue_name="q")
    def fails():
        raise ValueError("nope")

    with tracer_provider.get_tracer("test").start_as_current_span("publish") as parent:
        works.send()
    fails.send()
    worker = Worker(broker, worker_timeout=100, worker_threads=1)
    worker.start()
    try:
        broker.join("q", timeout=10_000, fail_fast=False)
        worker.join()
    finally:
        worker.stop()

    by_name = {s.name: s for s in spans.get_finished_spans()}
    ok, failed = by_name["process works"], by_name["process fails"]
    assert ok.kind == SpanKind.CONSUMER
    assert ok.context.trace_id == parent.get_span_context().trace_id
    assert ok.parent.span_id == parent.get_span_context().span_id
    assert ok.attributes["messaging.destination.name"] == "q"
    assert failed.status.status_code == StatusCode.ERROR
    assert failed.parent is None

    points = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    points[(metric.name, p.attributes["dramatiq.actor"], p.attributes["outcome"])] = p
    assert points[("fleet.dramatiq.messages", "works", "ok")].value == 1
    assert points[("fleet.dramatiq.messages", "fails", "error")].value == 1
    assert points[("fleet.dramatiq.actor.duration", "works", "ok")].count == 1
