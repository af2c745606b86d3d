"""The dramatiq actors of the ``worker`` process: apply, rebuild, publish changes.

Actors are declared against an explicit broker and runtime by
:func:`declare_actors` (no import-time global broker), so tests can bind them
to dramatiq's StubBroker and the fleet to its JetStream broker.

* ``graph.apply`` applies pending log entries to the active projection version
  (a bounded number of batches per message; it re-sends itself while behind);
* ``graph.rebuild`` builds a version beside the active one, resumably, and
  promotes it;
* ``graph.publish_changes`` drains the outbox to the GRAPH stream.

The runtime's poller and the log-appended notification send these messages;
a flag per actor keeps at most one message of each kind outstanding.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import dramatiq
from dramatiq.broker import Broker

__all__ = ["Actors", "declare_actors"]

QUEUE_PROJECTOR = "projector"
QUEUE_REBUILD = "rebuild"
QUEUE_CHANGES = "changes"


@dataclass
class Actors:
    """The declared actors plus send-once helpers."""

    apply: dramatiq.Actor
    rebuild: dramatiq.Actor
    publish_changes: dramatiq.Actor
    _pending: dict[str, bool] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _send_once(self, name: str, actor: dramatiq.Actor, *args: Any) -> bool:
        with self._lock:
            if self._pending.get(name):
                return False
            self._pending[name] = True
        try:
            actor.send(*args)
        except Exception:
            self.done(name)
            raise
        return True

    def done(self, name: str) -> None:
        """An actor of kind ``name`` started: another message may be sent."""
        with self._lock:
            self._pending[name] = False

    def request_apply(self) -> bool:
        """Send ``graph.apply`` unless one is outstanding."""
        return self._send_once("apply", self.apply)

    def request_publish(self) -> bool:
        """Send ``graph.publish_changes`` unless one is outstanding."""
        return self._send_once("publish", self.publish_changes)

    def request_rebuild(self, version: int) -> bool:
        """Send ``graph.rebuild`` for ``version`` unless one is outstanding."""
        return self._send_once(f"rebuild{version}", self.rebuild, version)


def declare_actors(broker: Broker, *, apply: Callable[[], bool], rebuild: Callable[[int], None],
                   publish: Callable[[], bool]) -> Actors:
    """Declare the actors on ``broker``; each calls the given runtime function.

    ``apply`` and ``publish`` return True when work remains (the actor then
    re-sends itself), ``rebuild`` runs to promotion.
    """
    actors: Actors

    def graph_apply() -> None:
        actors.done("apply")
        if apply():
            actors.request_apply()
        actors.request_publish()

    def graph_rebuild(version: int) -> None:
        try:
            rebuild(version)
        finally:
            actors.done(f"rebuild{version}")
        actors.request_apply()

    def graph_publish_changes() -> None:
        actors.done("publish")
        if publish():
            actors.request_publish()

    options = {"broker": broker, "max_retries": 20, "min_backoff": 200, "max_backoff": 30_000}
    actors = Actors(
        apply=dramatiq.actor(graph_apply, actor_name="graph.apply", queue_name=QUEUE_PROJECTOR,
                             time_limit=600_000, **options),
        rebuild=dramatiq.actor(graph_rebuild, actor_name="graph.rebuild", queue_name=QUEUE_REBUILD,
                               time_limit=24 * 3_600_000, **options),
        publish_changes=dramatiq.actor(graph_publish_changes, actor_name="graph.publish_changes",
                                       queue_name=QUEUE_CHANGES, time_limit=600_000, **options),
    )
    return actors
