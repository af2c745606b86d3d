"""The SDLC graph projection, in sub-packages whose imports point only downward.

* :mod:`.read` - the reader, snapshots, results, traversal, saved questions, export;
* :mod:`.versions` - the catalog (the one owner of ``ACTIVE``), following the
  pointer, rebuild, digest, the change publisher's lanes and the diff on promotion;
* :mod:`.fold` - the pure apply step, the overlay and the applier (live
  batches, exactly once, poison policy), and the fold engine (rebuilds);
* :mod:`.changes` - the outbox (written with the graph change), the version
  diff and the downstream contract;
* :mod:`.store` - the only code that opens LMDB: environments, the graph
  store, write sets, writer locks, durable small files;
* :mod:`.model` - ontology, keys, mutations, indexes, change records.

:mod:`.errors` is the projection's exception tree. Imports only :mod:`events`,
the standard library, msgspec and lmdb.
"""
