"""A query's work budget: the nodes it may visit and the time it may take, and the clocks."""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["BudgetHit", "Work", "wall_clock"]

#: the clock is read once per this many visits
_CHECK_CLOCK_EVERY = 64


def wall_clock() -> datetime:
    """Now, in UTC (relative times count from it)."""
    return datetime.now(UTC)


class BudgetHit(Exception):
    """The query's work budget ran out (``kind``: nodes or time)."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class Work:
    """Counts visited nodes and watches the clock; raises :class:`BudgetHit` past either."""

    __slots__ = ("_check_at", "deadline", "exhausted", "max_ms", "max_nodes", "started", "visited")

    def __init__(self, max_nodes: int, max_ms: int) -> None:
        self.max_nodes = max_nodes
        self.max_ms = max_ms
        self.visited = 0
        self.started = time.monotonic()
        self.deadline = self.started + max_ms / 1000
        self.exhausted: str | None = None
        self._check_at = _CHECK_CLOCK_EVERY

    def visit(self, n: int = 1) -> None:
        self.visited += n
        if self.visited > self.max_nodes:
            self.visited = self.max_nodes
            self.exhausted = "nodes"
            raise BudgetHit("nodes")
        if self.visited >= self._check_at:
            self._check_at = self.visited + _CHECK_CLOCK_EVERY
            self.clock()

    def clock(self) -> None:
        if time.monotonic() > self.deadline:
            self.exhausted = "time"
            raise BudgetHit("time")

    def report(self) -> dict:
        return {"max_nodes": self.max_nodes, "max_ms": self.max_ms, "nodes_visited": self.visited,
                "elapsed_ms": round((time.monotonic() - self.started) * 1000, 3),
                "exhausted": self.exhausted}
