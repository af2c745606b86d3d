"""The graph model: ontology (node and edge types, ``NAME``, ``VERSION``), node keys, mutations, indexes, change records."""
