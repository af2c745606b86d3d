"""Graph traversals as pure functions over a neighbour function.

``expand(node) -> iterable of (edge, direction, other)`` is all they need, so
the reader passes one bound to an LMDB transaction and tests pass a dict.
Every traversal is bounded (depth, visited nodes) and says when a bound
cut it short.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Hashable, Iterable

__all__ = ["Expand", "Hops", "Step", "hops", "shortest_path"]

Expand = Callable[[Hashable], Iterable[tuple[str, str, Hashable]]]


@dataclass
class Hops:
    """Nodes reachable within ``depth`` hops: node -> distance (start excluded)."""

    depth: int
    nodes: dict = field(default_factory=dict)
    truncated: bool = False


@dataclass(frozen=True)
class Step:
    """One edge of a path: ``src -[edge]-> dst`` walked in ``direction``."""

    node: Hashable
    edge: str
    direction: str
    next: Hashable


def hops(start: Hashable, depth: int, expand: Expand, *, max_nodes: int = 10_000) -> Hops:
    """Breadth-first: every node within ``depth`` hops of ``start``, up to ``max_nodes``."""
    result = Hops(depth)
    seen = {start}
    frontier = [start]
    for distance in range(1, depth + 1):
        following = []
        for node in frontier:
            for _, _, other in expand(node):
                if other in seen:
                    continue
                if len(result.nodes) >= max_nodes:
                    result.truncated = True
                    return result
                seen.add(other)
                result.nodes[other] = distance
                following.append(other)
        if not following:
            break
        frontier = following
    return result


def shortest_path(src: Hashable, dst: Hashable, forward: Expand, backward: Expand, *,
                  max_depth: int = 6, max_nodes: int = 100_000) -> list[Step] | None:
    """A shortest path ``src -> dst`` by bidirectional BFS, or None within the bounds.

    ``forward`` expands from the source side, ``backward`` from the target
    side (for undirected search pass the same function twice). Each round
    grows the smaller frontier, which keeps hub nodes from exploding the
    search when the other side is narrow.
    """
    if src == dst:
        return []
    parents_f: dict = {src: None}
    parents_b: dict = {dst: None}
    frontier_f, frontier_b = deque([src]), deque([dst])
    depth = 0
    while frontier_f and frontier_b and depth < max_depth:
        depth += 1
        grow_forward = len(frontier_f) <= len(frontier_b)
        frontier = frontier_f if grow_forward else frontier_b
        parents, others = (parents_f, parents_b) if grow_forward else (parents_b, parents_f)
        expand = forward if grow_forward else backward
        following: deque = deque()
        for node in frontier:
            for edge, direction, other in expand(node):
                if other in parents:
                    continue
                parents[other] = (node, edge, direction)
                if other in others:
                    return _join(other, parents_f, parents_b)
                if len(parents_f) + len(parents_b) > max_nodes:
                    return None
                following.append(other)
        if grow_forward:
            frontier_f = following
        else:
            frontier_b = following
    return None


def _join(meet: Hashable, parents_f: dict, parents_b: dict) -> list[Step]:
    steps: list[Step] = []
    node = meet
    while parents_f[node] is not None:
        prev, edge, direction = parents_f[node]
        steps.append(Step(prev, edge, direction, node))
        node = prev
    steps.reverse()
    node = meet
    while parents_b[node] is not None:
        nxt, edge, direction = parents_b[node]
        # Walked backwards from dst: flip the direction for the forward reading.
        steps.append(Step(node, edge, "in" if direction == "out" else "out", nxt))
        node = nxt
    return steps
