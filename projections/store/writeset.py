"""A batch's writes, sorted per sub-database, ready for ``putmulti``.

Built from an overlay by :func:`projections.fold.writes.build_writeset`;
the store writes it in one LMDB transaction with the checkpoint. Every key
appears at most once per table, so puts and deletes commute.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from projections.model.ontology import EDGE_TYPES

__all__ = ["WriteSet", "encode_props", "decode_props", "EDGE_BYTES", "PROPS_EDGES"]

_encoder = msgspec.msgpack.Encoder(order="sorted")
_decoder = msgspec.msgpack.Decoder(dict)
#: canonical bytes of a property dict (sorted keys: equal content, equal bytes)
encode_props = _encoder.encode
decode_props = _decoder.decode

#: edge code -> its one-byte suffix in adjacency keys
EDGE_BYTES = {e.code: bytes([e.code]) for e in EDGE_TYPES}
#: edge codes whose edges carry properties
PROPS_EDGES = frozenset(e.code for e in EDGE_TYPES if e.props)


@dataclass
class WriteSet:
    """Sorted puts and deletes per table.

    Edge puts are ``(node, other)`` pairs grouped by edge code (one table per
    edge type and direction); an edge removal is listed once, in ``out_dels``.
    Three writers apply it: ``GraphStore.write``, ``MemoryGraph.write`` (the
    tests' twin) and ``bench/_peers_es.py`` (the eventsourcing peer's view);
    a new field needs all three.
    """

    nodes: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    stubs: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    #: blind creations: put if absent, else their properties go beneath the stored ones
    creates: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    node_dels: dict[int, list[bytes]] = field(default_factory=dict)
    tombs: list[bytes] = field(default_factory=list)
    out_puts: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    in_puts: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    out_dels: dict[int, list[tuple[bytes, bytes]]] = field(default_factory=dict)
    eprops_puts: list[tuple[bytes, bytes]] = field(default_factory=list)
    eprops_dels: list[bytes] = field(default_factory=list)
    idx_puts: list[tuple[bytes, bytes]] = field(default_factory=list)
    idx_dels: list[tuple[bytes, bytes]] = field(default_factory=list)
    lookup_puts: list[tuple[bytes, bytes]] = field(default_factory=list)
    lookup_dels: list[bytes] = field(default_factory=list)
    #: the batch's graph changes (:class:`projections.fold.overlay.Change`), for the outbox
    changes: list[Any] = field(default_factory=list)
