"""What graph queries answer: msgspec Structs with an ``as_dict`` for JSON."""

from __future__ import annotations

import msgspec

__all__ = ["Neighbor", "Node", "Page", "PathResult", "Step"]


class Node(msgspec.Struct, frozen=True):
    """A node: its id, type and properties."""

    id: str
    type: str
    props: dict

    def as_dict(self) -> dict:
        return {"id": self.id, "type": self.type, "props": self.props}


class Neighbor(msgspec.Struct, frozen=True):
    """An edge seen from one end: ``direction`` is ``out`` (node -> id) or ``in``."""

    edge: str
    direction: str
    id: str
    props: dict | None = None

    def as_dict(self) -> dict:
        out = {"edge": self.edge, "direction": self.direction, "id": self.id}
        if self.props:
            out["props"] = self.props
        return out


class Page(msgspec.Struct, frozen=True):
    """One page of a list answer (nodes, neighbours, ...).

    ``truncated`` says more items follow this page; ``next`` is then the
    opaque cursor to pass as ``after`` for them (:mod:`.paging`), None on the
    last page or where the answer cannot be continued (then raise the limit).
    ``total`` counts the whole answer, not what is left; when
    ``total_is_lower_bound`` it is "at least" that many (counting stopped at
    :data:`~projections.read.paging.COUNT_MAX`).
    """

    items: list
    next: str | None
    total: int = 0
    total_is_lower_bound: bool = False
    truncated: bool = False

    def as_dict(self, items: str = "items") -> dict:
        return {items: [i.as_dict() if hasattr(i, "as_dict") else i for i in self.items],
                "next": self.next, "total": self.total,
                "total_is_lower_bound": self.total_is_lower_bound, "truncated": self.truncated}


class Step(msgspec.Struct, frozen=True):
    """One edge of a path from ``source`` to ``target``: walked ``out`` along
    the edge (source -[edge]-> target) or ``in`` against it."""

    source: str
    edge: str
    direction: str
    target: str

    def as_dict(self) -> dict:
        return {"from": self.source, "edge": self.edge, "direction": self.direction,
                "to": self.target}


class PathResult(msgspec.Struct, frozen=True):
    """The answer to a shortest-path query.

    ``steps`` is a shortest path (empty when source is target), or None when
    none was found. Then ``truncated`` tells the two reasons apart: True, the
    search gave up after visiting ``max_nodes`` nodes and a path may still
    exist; False, there is no path of at most ``max_depth`` edges.
    ``visited`` is how many nodes the search reached.
    """

    steps: list[Step] | None
    truncated: bool = False
    visited: int = 0

    @property
    def found(self) -> bool:
        """Whether a path was found."""
        return self.steps is not None

    @property
    def length(self) -> int | None:
        """The number of edges of the path found, or None."""
        return None if self.steps is None else len(self.steps)

    def as_dict(self) -> dict:
        return {"length": self.length,
                "steps": None if self.steps is None else [s.as_dict() for s in self.steps],
                "truncated": self.truncated, "visited": self.visited}
