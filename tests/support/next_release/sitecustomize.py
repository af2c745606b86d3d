"""The next release of graphfleet, as a deploy brings it: put this folder on ``PYTHONPATH``.

Python imports ``sitecustomize`` at the start of every interpreter, so every
process of the "release" (the ``fleet`` CLI and any process it starts) runs
with the projection's code version one above this checkout's and one visible
change to the apply step: label names are upper-cased. A test runs two
releases of the worker beside each other on one data directory this way, as
README "Version lifecycle" does with two installations.
The change is made before anything imports the code version by value.
"""

from __future__ import annotations

import projections.model.ontology as ontology

ontology.VERSION += 1


def _upper_case_label_names() -> None:
    """Both apply paths (live: the overlay's handlers; rebuild: the fold engine's) see label
    events whose names are upper-cased."""
    import msgspec

    from events.types import EVENT_TYPES
    from projections.fold.apply import registry
    from projections.fold.engine import handlers as engine

    def upper(event):
        if getattr(event, "name", None):
            return msgspec.structs.replace(event, name=event.name.upper())
        return event

    for tag in ("label.created", "label.updated"):
        cls = EVENT_TYPES[tag]
        live, fold = registry._HANDLERS[cls], engine.HANDLERS[cls]
        registry._HANDLERS[cls] = lambda event, s, out, live=live: live(upper(event), s, out)
        engine.HANDLERS[cls] = lambda seg, event, s, fold=fold: fold(seg, upper(event), s)


_upper_case_label_names()
