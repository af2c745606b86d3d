"""The SDLC graph projection: ontology, pure apply step, LMDB store, queries, versions.

Reading order:

* :mod:`.ontology` - node and edge types, indexes, ``NAME`` and ``VERSION``;
  :mod:`.keys` - node keys (bytes) and their ``type:source:id`` text form.
* :mod:`.apply` - the pure step: canonical event -> :mod:`.mutations`.
* :mod:`.overlay` - what each mutation means against the current graph
  (merges, late creations, stubs, tombstones, cascades, reference
  resolution), batched in memory; :mod:`.writeset` - the batch's sorted
  writes; :mod:`.indexing` - index and lookup keys derived from node
  properties.
* :mod:`.store` and :mod:`.lmdbenv` - one LMDB environment per version,
  state and checkpoint in one transaction; :mod:`.memory` - its in-memory
  twin for tests; :mod:`.changes` - outbox records.
* :mod:`.applier` - batches, exactly once, poison policy; :mod:`.pipeline`
  and :mod:`.rebuild` - rebuilding a version from position 0; :mod:`.versions`
  - ACTIVE pointer, promote, rollback, drop; :mod:`.digest` - content digest.
* :mod:`.query`, :mod:`.traverse`, :mod:`.questions` - the reader API;
  :mod:`.export` - the whole graph as plain data.

Imports only :mod:`events`, the standard library, msgspec and lmdb.
"""
