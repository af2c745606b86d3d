"""Upcasters: turn an older stored event shape into the current one, on read.

Stored events are never rewritten. When an event type needs a breaking change,
its ``v`` goes up and a step ``(type, old_v) -> dict`` is registered here; the
codec runs the chain of steps before it validates the event.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["Upcasters", "UPCASTERS"]

Step = Callable[[dict[str, Any]], dict[str, Any]]


class Upcasters:
    """A registry of upcast steps keyed by ``(event type, from version)``."""

    def __init__(self) -> None:
        self._steps: dict[tuple[str, int], Step] = {}
        self._current: dict[str, int] = {}

    def register(self, event_type: str, from_version: int) -> Callable[[Step], Step]:
        """Decorate a function that maps version ``from_version`` to the next one."""

        def decorate(step: Step) -> Step:
            self._steps[(event_type, from_version)] = step
            self._current[event_type] = max(self._current.get(event_type, 1), from_version + 1)
            return step

        return decorate

    def current_version(self, event_type: str) -> int:
        """The version this code writes and validates for ``event_type``."""
        return self._current.get(event_type, 1)

    def upcast(self, data: dict[str, Any]) -> dict[str, Any]:
        """Apply every registered step from the data's ``v`` up to the current one."""
        event_type = data.get("type")
        version = data.get("v", 1)
        while (event_type, version) in self._steps:
            data = dict(self._steps[(event_type, version)](dict(data)))
            version += 1
            data["v"] = version
        return data


#: The registry the codec uses by default. Version 1 has no older shapes yet.
UPCASTERS = Upcasters()
