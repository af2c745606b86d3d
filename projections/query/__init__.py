"""The graph query language: JSON documents (:mod:`.schema`), a pure planner (:mod:`.plan`),
and the executor over one read snapshot (:mod:`.execute`). README "Query language"."""
