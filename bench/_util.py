"""Shared helpers for the standalone benchmarks (not part of the package)."""

from __future__ import annotations

import resource
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

__all__ = ["figure", "peak_rss_mb", "percentile"]


def figure(name: str, value: float, unit: str) -> None:
    """Print one figure as ``name: value unit``."""
    if isinstance(value, float):
        text = f"{value:.3f}" if value < 100 else f"{value:,.0f}".replace(",", "")
    else:
        text = str(value)
    print(f"{name}: {text} {unit}", flush=True)


def peak_rss_mb() -> float:
    """Peak resident set size of this process, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) of ``values``."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, int(p) - 1))]
