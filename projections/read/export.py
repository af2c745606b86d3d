"""The whole graph out of a version: a snapshot stream for subscribers, plain data for tests.

:func:`export_lines` streams a version from ONE read transaction as JSON
lines: a header naming the version, its checkpoint, the outbox ``seq`` it
corresponds to and its digest, then one line per node and per edge in the
digest's form (:mod:`projections.versions.digest`), so summing the body's
lines gives the header's digest. A subscriber loads it and follows the
GRAPH stream from ``seq + 1``. :func:`export_stream` is the same for an
async HTTP handler. ``export(store)`` reads a store (or a
:class:`~projections.fold.memory.MemoryGraph`) into a :class:`GraphDump` for
tests; ``check_derived`` verifies the index and lookup tables.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from projections.changes.contract import CHANGE_SCHEMA_VERSION
from projections.errors import NoActiveVersion, UnknownVersion, VersionStateError
from projections.fold.memory import MemoryGraph
from projections.model.indexing import index_keys, lookup_key
from projections.model.keys import CODES, format_key, key_type
from projections.model.ontology import EDGE_TYPES, NAME, NODE_TYPES
from projections.store.graph import OUTBOX_SEQ, GraphStore
from projections.store.writeset import EDGE_BYTES, decode_props
from projections.versions.catalog import Versions
from projections.versions.digest import digest_in, graph_lines
from projections.versions.lanes import read_offset

__all__ = ["ExportHeader", "ExportProgress", "GraphDump", "check_derived", "export", "export_lines",
           "export_stream", "open_export"]

_EDGE_NAME = {e.code: e.name for e in EDGE_TYPES}
_COMMIT = CODES["Commit"][0]


def _commit_lookup(key: bytes) -> bytes:
    end = key.index(0, 1) + 1
    return b"h" + key[1:end] + key[end + 8 :]


@dataclass
class GraphDump:
    """Nodes ``id -> (type, props)`` and edges ``(src, EDGE, dst) -> props or None``."""

    nodes: dict[str, tuple[str, dict]] = field(default_factory=dict)
    edges: dict[tuple[str, str, str], dict | None] = field(default_factory=dict)
    tombs: set[str] = field(default_factory=set)


def _raw(source: GraphStore | MemoryGraph):
    """(node key -> props bytes, [(src, code, dst)], eprops, idx pairs, lookups, tombs)."""
    if isinstance(source, MemoryGraph):
        return (dict(source.nodes), sorted(source.edges()), dict(source.eprops),
                {(k, n) for k, ns in source.idx.items() for n in ns}, dict(source.lookups),
                set(source.tombs))
    env = source.env
    with env.read() as txn:
        nodes = {}
        for t in NODE_TYPES:
            nodes.update(txn.cursor(env.nodes[t.code]).iternext())
        edges = [(src, e.code, dst) for e in EDGE_TYPES for src, dst in txn.cursor(env.out[e.code])]
        reverse = {(src, e.code, dst) for e in EDGE_TYPES for dst, src in txn.cursor(env.inn[e.code])}
        if reverse != set(edges):
            raise AssertionError(
                f"adjacency directions disagree: {len(set(edges) - reverse)} out-only,"
                f" {len(reverse - set(edges))} in-only edges"
            )
        eprops = dict(txn.cursor(env.eprops).iternext())
        idx = set(txn.cursor(env.idx).iternext())
        lookups = dict(txn.cursor(env.lookup).iternext())
        tombs = set(txn.cursor(env.tomb).iternext(values=False))
    return nodes, edges, eprops, idx, lookups, tombs


def export(source: GraphStore | MemoryGraph) -> GraphDump:
    """Every node and edge of ``source`` as plain data."""
    nodes, edges, eprops, _, _, tombs = _raw(source)
    dump = GraphDump()
    for key, raw in nodes.items():
        dump.nodes[format_key(key)] = (key_type(key).name, decode_props(raw))
    for src, code, dst in edges:
        raw = eprops.get(src + EDGE_BYTES[code] + dst)
        dump.edges[(format_key(src), _EDGE_NAME[code], format_key(dst))] = (
            decode_props(raw) if raw is not None else None)
    dump.tombs = {format_key(k) for k in tombs}
    return dump


def check_derived(source: GraphStore | MemoryGraph, *, strict_lookups: bool = True) -> list[str]:
    """Problems with the derived tables (empty when they match the nodes).

    ``strict_lookups`` also requires every lookup a node implies to point at
    it; turn it off for graphs where two nodes claim one name (the last
    writer wins there).
    """
    nodes, edges, eprops, idx, lookups, tombs = _raw(source)
    problems = []
    expected_idx = set()
    expected_lookups = {}
    for key, raw in nodes.items():
        props = decode_props(raw)
        expected_idx.update((k, key) for k in index_keys(key, props))
        lk = lookup_key(key, props)
        if lk is not None:
            expected_lookups[lk] = key
        if key[0] == _COMMIT:
            expected_lookups[_commit_lookup(key)] = key
        if key in tombs:
            problems.append(f"{format_key(key)} is both a node and a tombstone")
    if idx != expected_idx:
        problems.append(f"index: {len(idx - expected_idx)} stale, {len(expected_idx - idx)} missing")
    # A commit's key is reserved at first sight even if no node follows (a link
    # the other end of which was deleted): ``h`` lookups may outlive nodes. ``t``
    # entries are the stamps that order updates (projections.fold.stamps), not names.
    reserved = {k: v for k, v in lookups.items()
                if (k[:1] == b"h" and k not in expected_lookups) or k[:1] == b"t"}
    if strict_lookups and {k: v for k, v in lookups.items() if k not in reserved} != expected_lookups:
        problems.append(f"lookups differ: {set(lookups.items()) ^ set(expected_lookups.items())}")
    for k, node in lookups.items():
        if node not in nodes and k not in reserved:
            problems.append(f"lookup {k!r} points at missing node {format_key(node)}")
    for src, code, dst in edges:
        for end in (src, dst):
            if end not in nodes:
                problems.append(f"edge {_EDGE_NAME[code]} has a missing endpoint {format_key(end)}")
    return problems


# -- the snapshot stream ---------------------------------------------------------------------------


class ExportHeader(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", tag="export"):
    """The first line of an export: which version, where it stands, what follows."""

    schema: int = CHANGE_SCHEMA_VERSION
    projection: str
    version: int
    #: the outbox sequence the snapshot corresponds to: follow the GRAPH stream from ``seq + 1``
    seq: int
    #: the version's checkpoint (last applied log position)
    position: int
    digest: str
    nodes: int
    edges: int


@dataclass(frozen=True)
class ExportProgress:
    """How far an export is: ``phase`` "digest" (the first pass) or "lines" (the second)."""

    phase: str
    done: int
    total: int
    elapsed_secs: float


_encode_header = msgspec.json.Encoder().encode


def export_lines(store: GraphStore, *, projection: str, version: int, seq_offset: int = 0,
                 progress: Callable[[ExportProgress], None] | None = None) -> Iterator[bytes]:
    """The export of ``store`` as blocks of whole JSON lines: the header, then nodes, then edges.

    One read transaction for both passes (the digest, then the lines), so
    header and body describe one state; memory stays flat whatever the size.
    ``seq_offset`` shifts ``seq`` as the version's publisher does on the wire.
    """
    env = store.env
    started = time.perf_counter()

    def report(phase: str, done: int, total: int) -> None:
        if progress is not None:
            progress(ExportProgress(phase, done, total, time.perf_counter() - started))

    with env.read() as txn:
        try:
            counts = store.counts(txn)
            expected = sum(counts["nodes"].values()) + sum(counts["edges"].values())
            summed = digest_in(store, txn, lambda done: report("digest", done, expected))
            yield _encode_header(ExportHeader(
                projection=projection, version=version, seq=store.meta_int(txn, OUTBOX_SEQ) + seq_offset,
                position=summed.position, digest=summed.hexdigest, nodes=summed.nodes,
                edges=summed.edges)) + b"\n"
            done = 0
            for _, n, lines in graph_lines(store, txn):
                yield lines
                done += n
                report("lines", done, summed.entries)
        finally:
            env.release_pages()


def open_export(projections_dir: str | Path, name: str = NAME,
                version: int | None = None) -> tuple[GraphStore, int, int]:
    """``(store, version, seq_offset)`` of ``version`` (default: the active one); close the store.

    Raises :class:`NoActiveVersion` or :class:`UnknownVersion` (both ``NotFound``), and
    :class:`VersionStateError` while a reincarnated version has no place on the stream yet.
    """
    versions = Versions(projections_dir, name)
    if version is None:
        version = versions.active()
        if version is None:
            raise NoActiveVersion(f"{name} has no active version to export - run `fleet replay {name}`")
    elif not versions.exists(version):
        raise UnknownVersion(f"{name} v{version} does not exist under {versions.root}"
                             f" - `fleet projections` lists the versions")
    path = versions.path(version)
    offset = read_offset(path)
    if offset is None:
        raise VersionStateError(
            f"{name} v{version} was rebuilt after a machine crash and its change publisher has not"
            " numbered its changes on the stream yet, so no `seq` can be named - retry once"
            " `fleet changes status` shows it publishing")
    return GraphStore(path), version, offset


async def export_stream(projections_dir: str | Path, name: str = NAME,
                        version: int | None = None) -> AsyncIterator[bytes]:
    """:func:`export_lines` of the active version (or ``version``) for an async HTTP handler.

    The first ``__anext__()`` opens the version and yields the header line;
    it raises ``NotFound`` errors before any byte is sent. LMDB work runs in
    one thread of its own, one block (about 10,000 lines) at a time.
    """
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="graph-export")
    store: GraphStore | None = None
    blocks: Iterator[bytes] | None = None
    try:
        store, number, offset = await loop.run_in_executor(pool, open_export, projections_dir, name,
                                                           version)
        blocks = export_lines(store, projection=name, version=number, seq_offset=offset)
        while (block := await loop.run_in_executor(pool, next, blocks, None)) is not None:
            yield block
    finally:
        # In the export's own thread, after any block still being read: LMDB work stays serial.
        pool.submit(_close, blocks, store)
        pool.shutdown(wait=False)


def _close(blocks: Iterator[bytes] | None, store: GraphStore | None) -> None:
    if blocks is not None:
        blocks.close()  # type: ignore[attr-defined]
    if store is not None:
        store.close()
