"""OpenTelemetry set-up for a fleet process, configured by the standard OTEL_* variables.

* Traces: ``OTEL_TRACES_EXPORTER`` = ``otlp`` (default when
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``..._TRACES_ENDPOINT`` is set),
  ``console`` or ``none``.
* Metrics: always kept in memory (the heartbeat ships a snapshot, the ``api``
  process renders every process's on ``/metrics``); also exported over OTLP
  when ``OTEL_METRICS_EXPORTER=otlp`` or an OTLP endpoint is set. Latency
  histograms get the buckets of :data:`LATENCY_BUCKETS_SECS` (scaled for ``ms``
  instruments), so ``/metrics`` has buckets from 0.5 ms to 30 s.
* ``OTEL_SDK_DISABLED=true`` turns everything off; ``OTEL_SERVICE_NAME`` and
  ``OTEL_RESOURCE_ATTRIBUTES`` are honoured by the SDK's resource detection.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricReader,
    MetricsData,
    NumberDataPoint,
    PeriodicExportingMetricReader,
    Sum,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from workers.natsio.heartbeat import MetricFamily, MetricPoint

__all__ = ["LATENCY_BUCKETS_SECS", "Telemetry", "families", "latency_views", "setup_telemetry"]

log = logging.getLogger(__name__)

#: upper bounds (seconds) of every latency histogram's buckets
LATENCY_BUCKETS_SECS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                        10.0, 30.0)
_PER_SECOND = {"s": 1.0, "ms": 1000.0, "us": 1e6}


@dataclass
class Telemetry:
    """Handles of a process's telemetry; :meth:`snapshot` gives its metrics for the heartbeat."""

    reader: InMemoryMetricReader | None = None
    tracer_provider: TracerProvider | None = None
    exporters: list[str] = field(default_factory=list)

    def snapshot(self) -> list[MetricFamily]:
        """Every instrument's current points (cumulative), as the heartbeat carries them."""
        if self.reader is None:
            return []
        return families(self.reader.get_metrics_data())

    def shutdown(self) -> None:
        """Flush exporters."""
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()


def families(data: MetricsData | None) -> list[MetricFamily]:
    """OpenTelemetry metrics data as :class:`MetricFamily` records (pure: names and units as given)."""
    out: list[MetricFamily] = []
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if isinstance(metric.data, Histogram):
                    kind = "histogram"
                elif isinstance(metric.data, Sum) and metric.data.is_monotonic:
                    kind = "counter"
                elif isinstance(metric.data, (Sum, Gauge)):
                    kind = "gauge"
                else:  # exponential histograms: no instrument here makes them
                    continue
                points = []
                for p in metric.data.data_points:
                    labels = {str(k): str(v) for k, v in (p.attributes or {}).items() if v is not None}
                    if isinstance(p, HistogramDataPoint):
                        points.append(MetricPoint(labels=labels, count=p.count, sum=p.sum,
                                                  bounds=list(p.explicit_bounds),
                                                  buckets=list(p.bucket_counts)))
                    elif isinstance(p, NumberDataPoint):
                        points.append(MetricPoint(labels=labels, value=p.value))
                out.append(MetricFamily(name=metric.name, kind=kind, unit=metric.unit or "",
                                        description=metric.description or "", points=points))
    return out


def latency_views() -> list[View]:
    """Histogram buckets for latencies, one view per time unit the fleet's instruments use."""
    return [View(instrument_type=HistogramInstrument, instrument_unit=unit,
                 aggregation=ExplicitBucketHistogramAggregation(
                     [round(b * scale, 6) for b in LATENCY_BUCKETS_SECS]))
            for unit, scale in _PER_SECOND.items()]


def setup_telemetry(process: str, environ: Mapping[str, str] | None = None) -> Telemetry:
    """Install tracer and meter providers for ``process`` (call once, at start-up)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return Telemetry()
    resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME", f"graphfleet-{process}"),
                                "graphfleet.process": process})
    otlp = bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
    telemetry = Telemetry(reader=InMemoryMetricReader())
    readers: list[MetricReader] = [telemetry.reader]
    if env.get("OTEL_METRICS_EXPORTER", "otlp" if otlp else "none") == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        readers.append(PeriodicExportingMetricReader(OTLPMetricExporter()))
        telemetry.exporters.append("metrics:otlp")
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers,
                                             views=latency_views()))

    provider = TracerProvider(resource=resource)
    exporter: SpanExporter | None = None
    choice = env.get("OTEL_TRACES_EXPORTER", "otlp" if otlp else "none")
    if choice == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    elif choice == "console":
        exporter = ConsoleSpanExporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
        telemetry.exporters.append(f"traces:{choice}")
    trace.set_tracer_provider(provider)
    telemetry.tracer_provider = provider
    log.info("telemetry ready", extra={"component": process, "exporters": telemetry.exporters})
    return telemetry
