"""The shipper's and the replica's metrics (rendered on ``/metrics`` from their heartbeats)."""

from __future__ import annotations

from opentelemetry import metrics

__all__ = ["applied", "apply_ms", "ship_ms", "shipped"]

meter = metrics.get_meter("workers.shipper")
shipped = meter.create_counter("fleet.ship.rows", unit="{row}",
                               description="Log rows the shipper published to the LOG stream")
ship_ms = meter.create_histogram("fleet.ship.batch", unit="ms",
                                 description="Latency of one shipped batch, read to last ack")
applied = meter.create_counter("fleet.replica.rows", unit="{row}",
                               description="Shipped rows a replica appended to its log")
apply_ms = meter.create_histogram("fleet.replica.batch", unit="ms",
                                  description="Latency of one replica append transaction")
