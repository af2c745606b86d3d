"""The graph digest: a checksum of nodes and edges that a subscriber can compute over its copy.

Every node and every edge is one line of canonical JSON in its public form
(:func:`~projections.changes.contract.node_line`, :func:`~projections.changes.contract.edge_line`);
the digest is the sum, modulo 2**256, of the lines' SHA-256 values read as
big-endian integers, written as 64 lowercase hex digits. A sum needs no
order, so a scan streams LMDB in key order in flat memory, a client sums its
dict in any order, and a change is one subtraction and one addition. Index,
lookup and tombstone tables are not covered (``check_derived`` checks those).
README "Export and digest" is the definition for other languages.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from hashlib import sha256
from itertools import islice
from operator import methodcaller

import lmdb
import msgspec

from projections.changes.contract import edge_lines, node_lines
from projections.fold.applier import MAPPED_BUDGET, mapped_bytes
from projections.model.keys import format_keys
from projections.model.ontology import EDGE_TYPES, NODE_TYPES
from projections.store.env import Env
from projections.store.graph import CHECKPOINT, GraphStore
from projections.store.writeset import EDGE_BYTES, PROPS_EDGES

__all__ = ["Digest", "LineSum", "digest", "digest_in", "graph_lines"]

_MODULUS = 1 << 256
_CHUNK = 10_000  # entries per chunk: bounds the memory of a scan, not part of the digest
_decode_many = msgspec.msgpack.Decoder(list[dict]).decode
_digest = methodcaller("digest")
_EMPTY_MAP = b"\x80"  # msgpack {}: an edge of a props type stored without any


@dataclass(frozen=True)
class Digest:
    """A digest, the log position it describes, and what it covers."""

    position: int
    hexdigest: str
    entries: int  # nodes + edges
    nodes: int = 0
    edges: int = 0


class LineSum:
    """The digest of a set of lines, kept up to date one line at a time."""

    __slots__ = ("count", "total")

    def __init__(self) -> None:
        self.total = 0
        self.count = 0

    def add(self, line: bytes) -> None:
        """Count ``line`` in (a node or an edge line, without its newline)."""
        self.total += int.from_bytes(sha256(line).digest(), "big")
        self.count += 1

    def add_lines(self, lines: bytes) -> None:
        """Count in every line of newline-ended ``lines`` (the export's body, or a part of it)."""
        each = lines.split(b"\n")
        each.pop()  # what follows the last newline
        self.total += sum(map(int.from_bytes, map(_digest, map(sha256, each))))
        self.count += len(each)

    def remove(self, line: bytes) -> None:
        """Count ``line`` out again (the state a change replaced)."""
        self.total -= int.from_bytes(sha256(line).digest(), "big")
        self.count -= 1

    @property
    def hexdigest(self) -> str:
        """64 lowercase hex digits: the sum modulo 2**256, big-endian."""
        return f"{self.total % _MODULUS:064x}"


def graph_lines(store: GraphStore, txn: lmdb.Transaction) -> Iterator[tuple[str, int, bytes]]:
    """``("node" | "edge", count, lines)``: every node, then every edge, of ``txn``'s snapshot.

    ``lines`` holds ``count`` lines, each ending in a newline, in LMDB key
    order per type (not part of any definition). The scan maps the file as it
    goes, so it unmaps what it read whenever the mapping grows past the
    budget (RSS stays flat).
    """
    env = store.env
    for t in NODE_TYPES:
        items = txn.cursor(env.nodes[t.code]).iternext(keys=True, values=True)
        while chunk := _take(items, env):
            ids = format_keys([k for k, _ in chunk])
            yield "node", len(chunk), node_lines(t.name, ids, _decode_many(_array(chunk)))
    eprops = env.eprops
    for e in EDGE_TYPES:
        items = txn.cursor(env.out[e.code]).iternext(keys=True, values=True)
        code = EDGE_BYTES[e.code]
        while chunk := _take(items, env):
            srcs = _format_repeated([s for s, _ in chunk])
            dsts = _format_repeated([d for _, d in chunk])
            props = None
            if e.code in PROPS_EDGES:
                props = _decode_many(_array_of([txn.get(s + code + d, _EMPTY_MAP, db=eprops)
                                                for s, d in chunk]))
            yield "edge", len(chunk), edge_lines(e.name, srcs, dsts, props)


def digest_in(store: GraphStore, txn: lmdb.Transaction,
              progress: Callable[[int], None] | None = None) -> Digest:
    """The digest of ``txn``'s snapshot of ``store``; ``progress(lines so far)`` after each chunk."""
    total = LineSum()
    counts = {"node": 0, "edge": 0}
    for kind, n, lines in graph_lines(store, txn):
        total.add_lines(lines)
        counts[kind] += n
        if progress is not None:
            progress(total.count)
    return Digest(store.meta_int(txn, CHECKPOINT), total.hexdigest, total.count,
                  counts["node"], counts["edge"])


def digest(store: GraphStore) -> Digest:
    """Scan ``store`` in one read transaction and return its digest at its checkpoint."""
    with store.env.read() as txn:
        try:
            return digest_in(store, txn)
        finally:
            store.env.release_pages()


def _take(items: Iterator[tuple[bytes, bytes]], env: Env) -> list[tuple[bytes, bytes]]:
    chunk = list(islice(items, _CHUNK))
    if chunk and mapped_bytes() > MAPPED_BUDGET:
        env.release_pages()
    return chunk


def _format_repeated(keys: list[bytes]) -> list[str]:
    """:func:`format_keys` of edge ends, each distinct key formatted once (ends repeat a lot)."""
    distinct = dict.fromkeys(keys)
    text = dict(zip(distinct, format_keys(distinct)))
    return [text[k] for k in keys]


def _array(chunk: list[tuple[bytes, bytes]]) -> bytes:
    """The values of ``chunk`` (msgpack maps) as one msgpack array: one decode call per chunk."""
    return _array_of([v for _, v in chunk])


def _array_of(values: list[bytes]) -> bytes:
    return b"\xdd" + len(values).to_bytes(4, "big") + b"".join(values)
