"""OpenTelemetry set-up for a fleet process, configured by the standard OTEL_* variables.

* Traces: ``OTEL_TRACES_EXPORTER`` = ``otlp`` (default when
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``..._TRACES_ENDPOINT`` is set),
  ``console`` or ``none``.
* Metrics: always kept in memory (the heartbeat ships a snapshot, the ``api``
  process renders every process's on ``/metrics``); also exported over OTLP
  when ``OTEL_METRICS_EXPORTER=otlp`` or an OTLP endpoint is set.
* ``OTEL_SDK_DISABLED=true`` turns everything off; ``OTEL_SERVICE_NAME`` and
  ``OTEL_RESOURCE_ATTRIBUTES`` are honoured by the SDK's resource detection.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from typing import Mapping

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricReader,
    NumberDataPoint,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

__all__ = ["Telemetry", "setup_telemetry"]

log = logging.getLogger(__name__)
_NAME_RE = re.compile(r"[^a-zA-Z0-9_]")


@dataclass
class Telemetry:
    """Handles of a process's telemetry; :meth:`snapshot` flattens its metrics."""

    reader: InMemoryMetricReader | None = None
    tracer_provider: TracerProvider | None = None
    exporters: list[str] = field(default_factory=list)

    def snapshot(self) -> dict[str, float]:
        """Current metric values keyed Prometheus-style: ``name{label="v"}``."""
        if self.reader is None:
            return {}
        data = self.reader.get_metrics_data()
        out: dict[str, float] = {}
        if data is None:
            return out
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    name = _NAME_RE.sub("_", metric.name)
                    for point in metric.data.data_points:
                        labels = _labels(point.attributes)
                        if isinstance(point, HistogramDataPoint):
                            out[f"{name}_count{labels}"] = point.count
                            out[f"{name}_sum{labels}"] = point.sum
                        elif isinstance(point, NumberDataPoint):
                            out[f"{name}{labels}"] = point.value
        return out

    def shutdown(self) -> None:
        """Flush exporters."""
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()


def _labels(attributes: Mapping | None) -> str:
    if not attributes:
        return ""
    inner = ",".join(f'{_NAME_RE.sub("_", str(k))}="{v}"' for k, v in sorted(attributes.items()))
    return "{" + inner + "}"


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
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=readers))

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
