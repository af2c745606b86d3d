"""The pure apply step: one canonical event -> the graph mutations it implies.

``apply(event)`` reads nothing but the event: whatever depends on the graph
(merging properties, cascading deletes, resolving ``group/project#12`` to an
issue) is expressed as a mutation whose semantics the store's
:class:`~projections.fold.overlay.Overlay` implements against the current state.
That keeps this step trivially deterministic and lets a rebuild run it in a
separate process from the store (see :mod:`projections.versions.rebuild`).
One module per family of event types registers its handlers.

Text (descriptions, comments, commit messages) is not stored in the graph; it
stays in the log. Only the references it holds become edges.
"""

from projections.fold.apply import code, org, work  # noqa: F401 - importing registers the handlers
from projections.fold.apply.registry import apply, handled_types

__all__ = ["apply", "HANDLED_TYPES"]

HANDLED_TYPES = handled_types()
