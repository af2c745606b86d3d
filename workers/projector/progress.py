"""How fast a projection moves: a rate over a recent window, the ETA it gives, and the one
wording of it (``catching up: lag N, R events/s, ETA T``) that the heartbeat, ``fleet health``
and ``/readyz`` share.
"""

from __future__ import annotations

import threading
from collections import deque

__all__ = ["RateWindow", "catch_up_line", "eta_secs", "format_secs"]


class RateWindow:
    """Positions reached over time; :meth:`rate` is events per second over the last ``window_secs``.

    Thread-safe (the projector's thread adds, the heartbeat's reads). The rate is measured up
    to *now*, so a projection that stops moving decays to 0 within the window.
    """

    def __init__(self, window_secs: float = 10.0) -> None:
        if window_secs <= 0:
            raise ValueError(f"window_secs={window_secs} must be more than 0")
        self.window_secs = window_secs
        self._samples: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def add(self, at: float, position: int) -> None:
        """Record that ``position`` was reached at ``at`` (seconds, any monotonic-enough clock)."""
        with self._lock:
            if self._samples and position < self._samples[-1][1]:
                self._samples.clear()  # another version (or a reset log): measure afresh
            self._samples.append((at, position))
            # Keep one sample at or before the window's start as the baseline.
            while len(self._samples) > 2 and self._samples[1][0] <= at - self.window_secs:
                self._samples.popleft()

    def rate(self, now: float) -> float:
        """Events per second from the window's baseline to the newest position, over now - baseline."""
        with self._lock:
            if len(self._samples) < 2:
                return 0.0
            (t0, p0), (t1, p1) = self._samples[0], self._samples[-1]
        if now - t1 > 2 * self.window_secs:  # no report for long: the last move is history
            return 0.0
        return (p1 - p0) / (now - t0) if now > t0 else 0.0


def eta_secs(lag: int, rate: float) -> float | None:
    """Seconds until ``lag`` is applied at ``rate``; None when nothing moves (no ETA)."""
    if lag <= 0:
        return 0.0
    return lag / rate if rate > 0 else None


def format_secs(secs: float | None) -> str:
    """``17s``, ``2m05s``, ``1h02m``; ``unknown`` for None."""
    if secs is None:
        return "unknown"
    whole = round(secs)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


def catch_up_line(lag: int, rate: float) -> str:
    """``catching up: lag 870,000, 52,310 events/s, ETA 17s`` (``ETA unknown`` at rate 0)."""
    shown = f"{rate:,.0f}" if rate >= 10 or rate == 0 else f"{rate:.1f}"
    return f"catching up: lag {lag:,}, {shown} events/s, ETA {format_secs(eta_secs(lag, rate))}"
