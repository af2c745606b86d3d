"""The next release of graphfleet, as a deploy brings it: put this folder on ``PYTHONPATH``.

Python imports ``sitecustomize`` at the start of every interpreter, so every
process of the "release" (the ``fleet`` CLI and any process it starts) runs
with the projection's code version one above this checkout's and one visible
change to the apply step: label names are upper-cased. A test runs two
releases of the worker beside each other on one data directory this way, as
README "Deploying a new projection version" does with two installations.
The change is made before anything imports the code version by value.
"""

from __future__ import annotations

import projections.model.ontology as ontology

ontology.VERSION += 1


def _upper_case_label_names() -> None:
    from events.types import EVENT_TYPES
    from projections.fold.apply import registry

    for tag in ("label.created", "label.updated"):
        handler = registry._HANDLERS[EVENT_TYPES[tag]]

        def upper(event, s, out, handler=handler):
            start = len(out)
            handler(event, s, out)
            for i in range(start, len(out)):  # (CREATE | MERGE, label key, props)
                op, key, *rest = out[i]
                if key[:1] == registry.LABEL and rest and isinstance(rest[0], dict) and "name" in rest[0]:
                    out[i] = (op, key, {**rest[0], "name": rest[0]["name"].upper()}, *rest[1:])

        registry._HANDLERS[EVENT_TYPES[tag]] = upper


_upper_case_label_names()
