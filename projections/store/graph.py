"""The LMDB store of one projection version: state reads, batch writes, meta.

:class:`GraphStore` owns a version's environment (see :mod:`projections.store.env`
for the layout). It reads the committed graph for an overlay
(:class:`TxnReader`), writes a batch's :class:`~projections.store.writeset.WriteSet`
with the checkpoint and poison records into the caller's transaction, and
answers meta questions (checkpoint, counts). Orchestration lives in
:mod:`projections.fold.applier`.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from pathlib import Path
from typing import Any, Callable, Iterable

import lmdb

from projections.model.keys import pack_int, unpack_int
from projections.model.ontology import EDGE_TYPES, NODE_TYPES
from projections.store.env import DEFAULT_MAP_SIZE, Env, close_env, open_env
from projections.store.writeset import EDGE_BYTES, WriteSet, decode_props, encode_props

__all__ = ["GraphStore", "TxnReader", "OUT_EDGES_OF", "IN_EDGES_OF", "CHECKPOINT", "OUTBOX_SEQ",
           "OUTBOX_PRUNED", "POISON_COUNT", "putmulti"]

_CODES = {t.name: t.code for t in NODE_TYPES}
#: node type code -> edge codes that may leave / enter a node of that type
OUT_EDGES_OF: dict[int, tuple[int, ...]] = {
    t.code: tuple(e.code for e in EDGE_TYPES if t.name in e.sources) for t in NODE_TYPES
}
IN_EDGES_OF: dict[int, tuple[int, ...]] = {
    t.code: tuple(e.code for e in EDGE_TYPES if t.name in e.targets) for t in NODE_TYPES
}
_MAX_KEY = b"\xff" * 512

CHECKPOINT = b"checkpoint"
OUTBOX_SEQ = b"outbox_seq"
#: the last outbox sequence deleted after publishing (0: none)
OUTBOX_PRUNED = b"outbox_pruned"
POISON_COUNT = b"poison_count"
UPDATED_AT = b"updated_at"


class TxnReader:
    """The committed graph as seen by one LMDB transaction (a ``StateReader``)."""

    def __init__(self, env: Env, txn: lmdb.Transaction, tombs: set[bytes] | frozenset = frozenset()):
        self.env = env
        self.txn = txn
        self.tombs = tombs
        self._cursors: dict[Any, lmdb.Cursor] = {}

    def _cursor(self, db: Any) -> lmdb.Cursor:
        c = self._cursors.get(db)
        if c is None:
            c = self._cursors[db] = self.txn.cursor(db)
        return c

    def node(self, key: bytes) -> dict | None:
        raw = self.txn.get(key, db=self.env.nodes[key[0]])
        return None if raw is None else decode_props(raw)

    def is_tomb(self, key: bytes) -> bool:
        return key in self.tombs

    def _adjacent(self, key: bytes, tables: dict, codes: tuple[int, ...]) -> list[tuple[int, bytes]]:
        found = []
        for code in codes:
            c = self._cursor(tables[code])
            if c.set_key(key):
                found.extend((code, other) for other in c.iternext_dup())
        return found

    def out_edges(self, key: bytes, edge: int | None = None) -> list[tuple[int, bytes]]:
        codes = OUT_EDGES_OF.get(key[0], ()) if edge is None else (edge,)
        return self._adjacent(key, self.env.out, codes)

    def in_edges(self, key: bytes) -> list[tuple[int, bytes]]:
        return self._adjacent(key, self.env.inn, IN_EDGES_OF.get(key[0], ()))

    def has_edge(self, src: bytes, edge: int, dst: bytes) -> bool:
        return self._cursor(self.env.out[edge]).set_key_dup(src, dst)

    def edge_props(self, src: bytes, edge: int, dst: bytes) -> dict | None:
        raw = self.txn.get(src + EDGE_BYTES[edge] + dst, db=self.env.eprops)
        return None if raw is None else decode_props(raw)

    def lookup(self, key: bytes) -> bytes | None:
        return self.txn.get(key, db=self.env.lookup)


#: puts between two unmappings of the data file in a bulk write (each may map a page or two)
_RELEASE_EVERY = 16_384


def putmulti(txn: lmdb.Transaction, db: Any, items: list, *, dupsort: bool = False,
              overwrite: bool = True) -> int:
    """Put sorted ``items``; the part past the table's last key is appended.

    LMDB's append mode skips the tree search and fills pages completely; it
    is only valid for keys above every existing one, hence the split.
    """
    if not items:
        return 0
    c = txn.cursor(db)
    split = 0
    if c.last():
        split = bisect_right(items, (c.key(), _MAX_KEY))
    added = 0
    if split:
        added += c.putmulti(items[:split], dupdata=not dupsort, overwrite=overwrite)[1]
    if split < len(items):
        added += c.putmulti(items[split:] if split else items, overwrite=overwrite, append=True)[1]
    return added


def _released_putmulti(release: Callable[[], None]) -> Callable[..., int]:
    """:func:`putmulti` that unmaps the data file every ``_RELEASE_EVERY`` puts: a bulk
    write's puts land all over a large file, and each maps the pages it touches."""
    def put(txn: lmdb.Transaction, db: Any, items: list, **kw: Any) -> int:
        added = 0
        for at in range(0, len(items), _RELEASE_EVERY):
            if at:
                release()
            added += putmulti(txn, db, items[at : at + _RELEASE_EVERY], **kw)
        return added

    return put


class GraphStore:
    """One projection version's LMDB environment. ``close()`` when done."""

    def __init__(self, path: str | Path, *, create: bool = False,
                 map_size: int = DEFAULT_MAP_SIZE) -> None:
        self.path = Path(path)
        self.env = open_env(self.path, create=create, map_size=map_size)
        self._tombs: set[bytes] | None = None

    def close(self) -> None:
        """Release the environment (shared with other stores of this process)."""
        if self.env is not None:
            close_env(self.env)
            self.env = None  # type: ignore[assignment]

    def __enter__(self) -> "GraphStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state -------------------------------------------------------------

    @property
    def tombs(self) -> set[bytes]:
        """Keys of deleted nodes, held in memory by the writer (loaded once)."""
        if self._tombs is None:
            with self.env.read() as txn:
                self._tombs = set(txn.cursor(self.env.tomb).iternext(keys=True, values=False))
        return self._tombs

    def reader(self, txn: lmdb.Transaction) -> TxnReader:
        """A state reader over ``txn`` that knows the tombstones."""
        return TxnReader(self.env, txn, self.tombs)

    # -- meta --------------------------------------------------------------

    def meta_int(self, txn: lmdb.Transaction, key: bytes, default: int = 0) -> int:
        """An integer meta value."""
        raw = txn.get(key, db=self.env.meta)
        return default if raw is None else unpack_int(raw)

    def put_meta(self, txn: lmdb.Transaction, key: bytes, value: Any) -> None:
        """Store a meta value: ints packed, anything else as msgpack."""
        raw = pack_int(value) if isinstance(value, int) and not isinstance(value, bool) else encode_props(value)
        txn.put(key, raw, db=self.env.meta)

    def meta_ints(self, *keys: bytes) -> tuple[int, ...]:
        """Integer meta values, read in one transaction of their own."""
        with self.env.read() as txn:
            return tuple(self.meta_int(txn, key) for key in keys)

    def copy_to(self, path: Path) -> None:
        """A consistent copy of the environment into the empty folder ``path`` (readers and
        the writer go on meanwhile: LMDB copies one read transaction's view)."""
        path.mkdir(parents=True, exist_ok=True)
        self.env.env.copy(str(path))

    def checkpoint(self) -> int:
        """The last applied log position (0 for an empty projection)."""
        with self.env.read() as txn:
            return self.meta_int(txn, CHECKPOINT)

    def counts(self, txn: lmdb.Transaction) -> dict[str, dict[str, int]]:
        """Nodes per type and edges per type, from LMDB's own entry counts."""
        env = self.env
        nodes = {t.name: txn.stat(env.nodes[t.code])["entries"] for t in NODE_TYPES}
        edges = {e.name: txn.stat(env.out[e.code])["entries"] for e in EDGE_TYPES}
        return {"nodes": nodes, "edges": edges}

    # -- writing -----------------------------------------------------------

    def write(self, txn: lmdb.Transaction, ws: WriteSet, *, checkpoint: int,
              poisons: Iterable[tuple[int, dict]] = (), release_pages: bool = False) -> None:
        """Write a batch and its checkpoint into ``txn`` (the caller commits).

        ``release_pages`` unmaps the file's pages after each table (a bulk
        batch's writes land all over a large file). The batch's change records
        are the outbox's business (:mod:`projections.changes.outbox`).
        """
        env = self.env
        release = env.release_pages if release_pages else (lambda: None)
        put = _released_putmulti(release) if release_pages else putmulti
        for code, items in ws.node_dels.items():
            db = env.nodes[code]
            for key in items:
                txn.delete(key, db=db)
        for code, items in ws.nodes.items():
            put(txn, env.nodes[code], items)
            release()
        for code, items in ws.stubs.items():
            put(txn, env.nodes[code], items, overwrite=False)
        for code, items in ws.creates.items():
            db = env.nodes[code]
            if put(txn, db, items, overwrite=False) < len(items):
                # Some were stored already (events about them logged before their
                # creation): the creation's properties go beneath theirs.
                for key, value in items:
                    stored = txn.get(key, db=db)
                    if stored != value:
                        merged = {**decode_props(value), **decode_props(stored)}
                        txn.put(key, encode_props(merged), db=db)
        put(txn, env.tomb, [(k, b"") for k in ws.tombs])
        inn = env.inn
        for code, items in ws.out_dels.items():
            out_db, in_db = env.out[code], inn[code]
            for node, other in items:
                txn.delete(node, other, db=out_db)
                txn.delete(other, node, db=in_db)
        release()
        for code, items in ws.out_puts.items():
            put(txn, env.out[code], items, dupsort=True)
            release()
        for code, items in ws.in_puts.items():
            put(txn, inn[code], items, dupsort=True)
            release()
        for key in ws.eprops_dels:
            txn.delete(key, db=env.eprops)
        put(txn, env.eprops, ws.eprops_puts)
        for key, node in ws.idx_dels:
            txn.delete(key, node, db=env.idx)
        put(txn, env.idx, ws.idx_puts, dupsort=True)
        release()
        for key in ws.lookup_dels:
            txn.delete(key, db=env.lookup)
        put(txn, env.lookup, ws.lookup_puts)
        release()
        poisons = list(poisons)
        if poisons:
            put(txn, env.poison, sorted((pack_int(p), encode_props(info)) for p, info in poisons))
            self.put_meta(txn, POISON_COUNT, self.meta_int(txn, POISON_COUNT) + len(poisons))
        self.put_meta(txn, CHECKPOINT, checkpoint)
        txn.put(UPDATED_AT, encode_props(time.time()), db=env.meta)
