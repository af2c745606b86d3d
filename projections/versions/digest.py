"""The content digest of a projection version: equal graphs, equal digests.

Computed by a scan of every graph table (nodes, both adjacency directions,
edge properties, indexes, lookups, tombstones) in one read transaction, so
it comes with the exact checkpoint it describes. LMDB keeps keys (and
duplicates) sorted, so the scan order is canonical and the digest does not
depend on the order in which batches, chunks or transactions wrote the data.
That is what makes "rebuild from 0" and "live since forever" comparable
(DESIGN invariant 5). A scan costs no write-path time; it reads each page
once (about a second per million events).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from itertools import islice
from typing import Iterator

import msgspec

from projections.fold.applier import MAPPED_BUDGET, mapped_bytes
from projections.store.env import Env
from projections.store.graph import CHECKPOINT, GraphStore

__all__ = ["Digest", "digest"]

_frame = msgspec.msgpack.Encoder().encode
_CHUNK = 20_000  # entries hashed per frame: part of the digest's definition
_STEP = 4096


@dataclass(frozen=True)
class Digest:
    """A digest and the log position it describes."""

    position: int
    hexdigest: str
    entries: int


def digest(store: GraphStore) -> Digest:
    """Scan ``store`` and return its content digest at its checkpoint."""
    h = hashlib.blake2b(digest_size=16)
    entries = 0
    env = store.env
    with env.read() as txn:
        position = store.meta_int(txn, CHECKPOINT)
        for name, db in env.graph_tables:
            h.update(_frame(name))
            cursor = txn.cursor(db)
            if not cursor.first():
                continue
            items = cursor.iternext(keys=True, values=True)
            while True:
                chunk = _read_chunk(items, env)
                if not chunk:
                    break
                entries += len(chunk)
                # msgpack frames each key and value, so entry boundaries are unambiguous.
                h.update(_frame(chunk))
        env.release_pages()
    return Digest(position, h.hexdigest(), entries)


def _read_chunk(items: Iterator[tuple[bytes, bytes]], env: Env) -> list[tuple[bytes, bytes]]:
    """The next ``_CHUNK`` entries; a scan maps the whole file, so unmap as it goes."""
    chunk: list[tuple[bytes, bytes]] = []
    while len(chunk) < _CHUNK:
        step = list(islice(items, min(_STEP, _CHUNK - len(chunk))))
        if not step:
            break
        chunk += step
        if mapped_bytes() > MAPPED_BUDGET:
            env.release_pages()
    return chunk
