"""The dramatiq actors of the ``worker`` process: apply, rebuild, publish changes.

Actors are declared against an explicit broker and runtime by
:func:`declare_actors` (no import-time global broker), so tests can bind them
to dramatiq's StubBroker and the fleet to its JetStream broker.

* ``graph.rebuild`` builds a version beside the active one, resumably, and
  promotes it. The projector asks for it (through :meth:`Actors.request_rebuild`,
  at most one message per version outstanding) when the code's version must be
  built: long work that is worth a durable, retried message. Its queue is the
  code version's own (``rebuild-v<N>``): during a deploy two releases of the
  worker run beside each other, and only a worker whose code has version N
  may take a task for N. Its promotion emits the ``rebuilt`` notice, the
  diff from the replaced version and the ``synced`` record (or ``resync``
  above ``FLEET_CHANGES_DIFF_MAX``).
* ``graph.apply`` wakes the runtime's projector, which applies everything
  pending to the active version;
* ``graph.publish_changes`` wakes the runtime's change publisher, which drains
  the outboxes to the GRAPH stream.

The last two are nudges any process may send through the broker; the worker
itself wakes its loops in-process (see :mod:`workers.projector.runtime`), because a
broker round trip on the live path costs more than the work it announces.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import dramatiq
from dramatiq.broker import Broker

__all__ = ["Actors", "declare_actors", "rebuild_queue"]

QUEUE_PROJECTOR = "projector"
QUEUE_REBUILD = "rebuild"
QUEUE_CHANGES = "changes"


@dataclass
class Actors:
    """The declared actors plus a send-once helper for rebuilds."""

    apply: dramatiq.Actor
    rebuild: dramatiq.Actor
    publish_changes: dramatiq.Actor
    _pending: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def request_rebuild(self, version: int) -> bool:
        """Send ``graph.rebuild`` for ``version`` unless one is outstanding."""
        with self._lock:
            if version in self._pending:
                return False
            self._pending.add(version)
        try:
            self.rebuild.send(version)
        except Exception:
            self.rebuild_done(version)
            raise
        return True

    def rebuild_done(self, version: int) -> None:
        """A ``graph.rebuild`` of ``version`` finished (or failed): another may be sent."""
        with self._lock:
            self._pending.discard(version)


def rebuild_queue(code_version: int | None) -> str:
    """The queue of ``graph.rebuild`` tasks for one code version (None: the shared, older name)."""
    return QUEUE_REBUILD if code_version is None else f"{QUEUE_REBUILD}-v{code_version}"


def declare_actors(broker: Broker, *, apply: Callable[[], None], rebuild: Callable[[int], None],
                   publish: Callable[[], None], code_version: int | None = None) -> Actors:
    """Declare the actors on ``broker``; each calls the given runtime function.

    ``apply`` and ``publish`` wake the runtime's loops (thread-safe, immediate);
    ``rebuild`` runs to promotion.
    """
    actors: Actors

    def graph_apply() -> None:
        apply()

    def graph_rebuild(version: int) -> None:
        try:
            rebuild(version)
        finally:
            actors.rebuild_done(version)

    def graph_publish_changes() -> None:
        publish()

    options = {"broker": broker, "max_retries": 20, "min_backoff": 200, "max_backoff": 30_000}
    actors = Actors(
        apply=dramatiq.actor(graph_apply, actor_name="graph.apply", queue_name=QUEUE_PROJECTOR,
                             time_limit=60_000, **options),
        rebuild=dramatiq.actor(graph_rebuild, actor_name="graph.rebuild",
                               queue_name=rebuild_queue(code_version),
                               time_limit=24 * 3_600_000, **options),
        publish_changes=dramatiq.actor(graph_publish_changes, actor_name="graph.publish_changes",
                                       queue_name=QUEUE_CHANGES, time_limit=60_000, **options),
    )
    return actors
