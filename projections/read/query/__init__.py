"""The graph query language (README "Query language").

:mod:`.schema` the documents and their JSON Schema; :mod:`.plan` the pure
planner (with :mod:`.selector` for selectors and :mod:`.cursor` for cursors);
:mod:`.execute` runs a plan over one read snapshot (:mod:`.match` matches
nodes, :mod:`.order` sorts, :mod:`.budget` bounds the work); :mod:`.saved`
holds the named questions as documents.
"""
