"""The SDLC graph projection: ontology, pure apply step, LMDB store, queries, versions."""
