"""``/metrics``: the whole fleet in Prometheus text format, through ``prometheus_client``.

Each process's OpenTelemetry metrics reach the api in its heartbeat
(:class:`~workers.natsio.heartbeat.MetricFamily` records); :class:`FleetCollector`
turns them into metric families with a ``process`` label, adds the fleet
gauges the health judgement computes, and ``prometheus_client`` writes the text.

Why a collector over the heartbeats, not OpenTelemetry's Prometheus exporter
or ``prometheus_client``'s multiprocess mode: the exporter serves only the
metrics of the process it runs in, so the fleet would need one scrape target
per process (and the ingest and worker processes no HTTP port at all), and
multiprocess mode shares files on one host while the fleet's processes may run
on several. The heartbeats already bring every live process's metrics to the
api: one scrape of the api sees the fleet, and a process that died drops out
with its heartbeat's TTL.

Names follow Prometheus' conventions from the instrument's name and unit:
``fleet_`` prefix, ``.`` -> ``_``, base units (``ms`` and ``s`` -> ``_seconds``
with values scaled, ``By`` -> ``_bytes``), counters end in ``_total``,
annotation units like ``{event}`` add nothing.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from workers.natsio.heartbeat import MetricFamily

from ..health import HealthReport
from .health import report as gather_report

__all__ = ["CONTENT_TYPE", "FleetCollector", "prometheus_name", "render", "setup"]

log = logging.getLogger(__name__)

#: the text format ``render`` writes
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_INVALID = re.compile(r"[^a-zA-Z0-9_]")
#: UCUM unit -> (Prometheus base-unit suffix, factor to it)
_UNITS = {"ms": ("seconds", 1e-3), "s": ("seconds", 1.0), "us": ("seconds", 1e-6),
          "ns": ("seconds", 1e-9), "min": ("seconds", 60.0), "h": ("seconds", 3600.0),
          "By": ("bytes", 1.0), "KiBy": ("bytes", 1024.0), "MiBy": ("bytes", 1 << 20),
          "1": ("ratio", 1.0)}
_PER = {"s": "second", "ms": "millisecond", "min": "minute", "h": "hour"}


def setup(app: web.Application) -> None:
    """Add ``/metrics``."""
    app.router.add_get("/metrics", metrics)


async def metrics(request: web.Request) -> web.Response:
    """``GET /metrics``: Prometheus text exposition of the whole fleet."""
    body = render(await gather_report(request))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE,
                                            "X-Content-Type-Options": "nosniff"})


def prometheus_name(name: str, unit: str, kind: str) -> tuple[str, str, float]:
    """``(name, base unit or "", factor)`` of an OpenTelemetry instrument in Prometheus terms.

    The counter's ``_total`` is left to ``prometheus_client`` (it appends it).
    """
    base = _INVALID.sub("_", name).strip("_")
    if not base.startswith("fleet_"):
        base = f"fleet_{base}"
    suffix, factor = _UNITS.get(unit, ("", 1.0))
    if not suffix and "/" in unit:  # {event}/s -> per_second
        per = unit.split("/", 1)[1]
        suffix = f"per_{_PER.get(per, _INVALID.sub('_', per))}"
    if suffix == "ratio" and kind != "gauge":
        suffix = ""
    if kind == "counter" and base.endswith("_total"):
        base = base[: -len("_total")]
    if suffix and not base.endswith(f"_{suffix}"):
        base = f"{base}_{suffix}"
    unit_out = suffix if suffix in ("seconds", "bytes", "ratio") else ""
    return base, unit_out, factor


class FleetCollector(Collector):
    """Every process's metrics (label ``process``) and the fleet's health gauges, from one report."""

    def __init__(self, report: HealthReport) -> None:
        self.report = report

    def collect(self) -> Iterator[Metric]:
        health = list(_health_families(self.report))
        yield from _process_families(self.report.metrics, taken={f.name for f in health})
        yield from health


def render(report: HealthReport) -> bytes:
    """The Prometheus text exposition of ``report`` (pure: tested without a server)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(report))
    return generate_latest(registry)


def _process_families(by_process: dict[str, list[MetricFamily]], *, taken: set[str]
                      ) -> Iterator[Metric]:
    """One family per metric name, its samples from every process together (names in ``taken``,
    the health gauges', are left out)."""
    merged: dict[str, tuple[MetricFamily, str, float, list[tuple[str, MetricFamily]]]] = {}
    for process in sorted(by_process):
        for family in by_process[process]:
            name, unit, factor = prometheus_name(family.name, family.unit, family.kind)
            if name in taken:
                log.warning("metric skipped: a fleet health gauge has its name",
                            extra={"metric": name, "from_process": process})
                continue
            first = merged.setdefault(name, (family, unit, factor, []))
            if (first[0].kind, first[0].unit) != (family.kind, family.unit):
                # Two releases disagree on an instrument: keep the first and say so.
                log.warning("metric skipped: its kind or unit differs between processes",
                            extra={"metric": name, "from_process": process, "kind": family.kind,
                                   "unit": family.unit})
                continue
            first[3].append((process, family))
    for name, (family, unit, factor, sources) in merged.items():
        keys = sorted({k for _, f in sources for p in f.points for k in _label_keys(p.labels)})
        labelnames = ["process", *keys]
        doc = family.description or family.name
        if family.kind == "histogram":
            out: Metric = HistogramMetricFamily(name, doc, labels=labelnames, unit=unit)
        elif family.kind == "counter":
            out = CounterMetricFamily(name, doc, labels=labelnames, unit=unit)
        else:
            out = GaugeMetricFamily(name, doc, labels=labelnames, unit=unit)
        seen: set[tuple[str, ...]] = set()
        for process, f in sources:
            for point in f.points:
                labels = _label_keys(point.labels)
                values = [process, *(labels.get(k, "") for k in keys)]
                if tuple(values) in seen:  # one series once, whatever the sources say
                    continue
                seen.add(tuple(values))
                if family.kind == "histogram":
                    out.add_metric(values, _cumulative(point.bounds, point.buckets, point.count, factor),
                                   point.sum * factor)
                else:
                    out.add_metric(values, point.value * factor)
        yield out


def _label_keys(labels: dict[str, str]) -> dict[str, str]:
    """Attribute keys as label names (``dramatiq.actor`` -> ``dramatiq_actor``); ``process`` is ours."""
    out = {}
    for k, v in labels.items():
        key = _INVALID.sub("_", k)
        out["otel_process" if key == "process" else key] = v
    return out


def _cumulative(bounds: list[float], buckets: list[int], count: int, factor: float
                ) -> list[tuple[str, float]]:
    """OpenTelemetry's per-bucket counts as Prometheus' cumulative ``le`` buckets, ending in +Inf."""
    out, total = [], 0
    for bound, n in zip(bounds, buckets):
        total += n
        out.append((_le(bound * factor), total))
    out.append(("+Inf", count))
    return out


def _le(bound: float) -> str:
    return repr(float(f"{bound:.9g}"))


def _health_families(report: HealthReport) -> Iterable[Metric]:
    """Gauges computed by the health judgement (one family each)."""
    healthy = GaugeMetricFamily("fleet_healthy", "1 when `fleet health` says the fleet is healthy")
    healthy.add_metric([], int(report.ok))
    ready = GaugeMetricFamily("fleet_ready", "1 when /readyz answers 200 (same judgement as fleet_healthy)")
    ready.add_metric([], int(report.ready))
    component = GaugeMetricFamily(
        "fleet_component_healthy", "1 when the component is healthy, by its state",
        labels=["kind", "name", "state"])
    component_ready = GaugeMetricFamily(
        "fleet_component_ready", "0 when the component holds reads back (/readyz 503)",
        labels=["kind", "name", "state"])
    age = GaugeMetricFamily("fleet_heartbeat_age_seconds", "Seconds since the process's last heartbeat",
                            labels=["process"], unit="seconds")
    lag = GaugeMetricFamily("fleet_projection_lag", "Log head minus the projection version's position"
                            " (events)", labels=["projection", "version"])
    position = GaugeMetricFamily("fleet_projection_position", "Last log position applied to the"
                                 " projection version", labels=["projection", "version"])
    rate = GaugeMetricFamily("fleet_projection_apply_rate_per_second", "Events per second the projection"
                             " version applied over the last window", labels=["projection", "version"])
    eta = GaugeMetricFamily("fleet_projection_eta_seconds", "Seconds until the projection version reaches"
                            " the log head at its current rate (absent when it does not move)",
                            labels=["projection", "version"], unit="seconds")
    pending = GaugeMetricFamily("fleet_ingest_consumer_pending", "Messages the ingest consumer has not"
                                " acknowledged yet")
    head = GaugeMetricFamily("fleet_log_head", "Position of the log's newest event")
    quarantine = GaugeMetricFamily("fleet_quarantine_open", "Quarantined inputs not re-driven yet")
    restarts = CounterMetricFamily("fleet_process_restarts", "Times `fleet up` restarted the process"
                                   " since it started", labels=["process"])
    seen: set[tuple[str, str]] = set()
    for c in report.components:
        if (c.kind, c.name) in seen:
            continue
        seen.add((c.kind, c.name))
        component.add_metric([c.kind, c.name, c.state], int(c.healthy))
        component_ready.add_metric([c.kind, c.name, c.state], int(c.ready))
        supervised = c.data.get("supervisor")
        if isinstance(supervised, dict) and supervised.get("restarts") is not None:
            restarts.add_metric([c.name], supervised["restarts"])
        if c.kind == "process" and "last_heartbeat" in c.data:
            age.add_metric([c.name], max(0.0, report.at - c.data["last_heartbeat"]))
        if c.kind == "projection":
            version = c.data.get("version")
            which = [str(c.data.get("name") or c.name), "" if version is None else str(version)]
            lag.add_metric(which, c.data.get("lag") or 0)
            if c.data.get("checkpoint") is not None:
                position.add_metric(which, c.data["checkpoint"])
            if c.data.get("events_per_sec") is not None:
                rate.add_metric(which, c.data["events_per_sec"])
            if c.data.get("eta_secs") is not None:
                eta.add_metric(which, c.data["eta_secs"])
        if c.kind == "consumer":
            pending.add_metric([], c.data["pending"])
        if c.kind == "log":
            head.add_metric([], c.data["head"] or 0)
            quarantine.add_metric([], c.data["quarantine_open"])
    return [healthy, ready, component, component_ready, age, lag, position, rate, eta, pending, head,
            quarantine, restarts]
