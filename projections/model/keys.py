"""Node keys: compact bytes in the store, ``type:source:id`` text for people.

A key is the node type's one-byte code, the event source and a NUL, then the
native id: 8 big-endian bytes for numeric ids (so a type's nodes sort by id,
and new nodes are appended), and for refs the project id, ``b`` or ``t``
(branch or tag), the name and a NUL. Sources and names never hold a NUL, so
no key is a prefix of another one's components.

Commits are named by sha, which is random: sha-ordered tables would take
every rebuild batch's commits at random places and rewrite most of their
pages each time. So a commit's stored key is the log position where the
graph first met the sha, then the sha (``<code><source>\0<position><sha>\0``):
new commits append. Events and ids only know the sha, so they carry a
*commit reference* (:func:`commit_ref`, a distinct first byte) that the store
resolves through the ``h`` lookup (:func:`commit_lookup`), allocating the key
on first sight; the text form stays ``commit:<source>:<sha>`` either way.

The text form is what the CLI and the HTTP API speak:
``issue:gitlab:1234``, ``commit:github:9fceb02...``, ``ref:gitlab:7:branch:main``.
"""

from __future__ import annotations

import hashlib
import struct
from functools import lru_cache
from typing import Iterable

from projections.errors import QueryError
from projections.model.ontology import NODE_TYPES, NodeType

__all__ = [
    "CODES",
    "TAGS",
    "int_key",
    "commit_ref",
    "commit_key",
    "commit_lookup",
    "COMMIT_REF",
    "ref_key",
    "source_prefix",
    "key_type",
    "key_source",
    "key_int",
    "format_key",
    "format_keys",
    "parse_key",
    "parse_id",
    "known_id",
    "pack_int",
    "unpack_int",
]

_Q = struct.Struct(">Q")
pack_int = _Q.pack
_unpack = _Q.unpack_from

#: node type name -> one-byte code prefix
CODES: dict[str, bytes] = {t.name: bytes([t.code]) for t in NODE_TYPES}
#: node type name -> text tag (``merge_request``)
TAGS: dict[str, str] = {
    t.name: "".join("_" + c.lower() if c.isupper() and i else c.lower() for i, c in enumerate(t.name))
    for t in NODE_TYPES
}
_BY_CODE: dict[int, NodeType] = {t.code: t for t in NODE_TYPES}
_BY_TAG: dict[str, NodeType] = {TAGS[t.name]: t for t in NODE_TYPES} | {
    t.name.lower(): t for t in NODE_TYPES
} | {"mr": next(t for t in NODE_TYPES if t.name == "MergeRequest")}
_KIND_BYTE = {"branch": b"b", "tag": b"t"}
_KIND_NAME = {0x62: "branch", 0x74: "tag"}
# LMDB keys and dupsort values are at most 511 bytes; longer ref names are hashed.
_MAX_NAME = 300
_sources: dict[str, bytes] = {}


def source_prefix(source: str) -> bytes:
    """``source`` as it appears in keys (cached: every event asks)."""
    prefix = _sources.get(source)
    if prefix is None:
        prefix = _sources[source] = source.encode() + b"\0"
    return prefix


def unpack_int(data: bytes, offset: int = 0) -> int:
    """The big-endian 8-byte integer at ``offset``."""
    return _unpack(data, offset)[0]


def int_key(type_name: str, source: str, native_id: int) -> bytes:
    """The key of a node with a numeric id."""
    return CODES[type_name] + source_prefix(source) + _Q.pack(native_id)


#: first byte of a commit reference (the Commit code with the high bit set)
COMMIT_REF = CODES["Commit"][0] | 0x80


def commit_ref(source: str, sha: str) -> bytes:
    """A commit by sha, as events name it; the store resolves it to the stored key."""
    return bytes([COMMIT_REF]) + source_prefix(source) + sha.lower().encode() + b"\0"



def commit_lookup(ref: bytes) -> bytes:
    """The lookup key that maps a commit reference to the commit's stored key."""
    return b"h" + ref[1:]


def commit_key(ref: bytes, position: int) -> bytes:
    """The stored key of a commit first met at log ``position``."""
    end = ref.index(0, 1) + 1
    return CODES["Commit"] + ref[1:end] + _Q.pack(position) + ref[end:]


def ref_key(source: str, project_id: int, kind: str, name: str) -> bytes:
    """The key of a branch or tag of a project."""
    raw = name.encode()
    if len(raw) > _MAX_NAME:
        raw = raw[:_MAX_NAME] + b"~" + hashlib.blake2b(raw, digest_size=8).hexdigest().encode()
    return CODES["Ref"] + source_prefix(source) + _Q.pack(project_id) + _KIND_BYTE[kind] + raw + b"\0"


def key_type(key: bytes) -> NodeType:
    """The node type of a key (or commit reference)."""
    return _BY_CODE[key[0] & 0x7F]


def key_source(key: bytes) -> str:
    """The event source a key is scoped by."""
    return key[1 : key.index(0, 1)].decode()


def key_int(key: bytes) -> int:
    """The native numeric id of a key of a numeric-id type."""
    return _unpack(key, key.index(0, 1) + 1)[0]


def format_keys(keys: Iterable[bytes]) -> list[str]:
    """:func:`format_key` of many keys (a traversal's answer), without its cache.

    A large answer would only evict what the cache holds; instead the
    ``tag:source:`` part is formatted once per type and source, and the rest
    of a numeric-id or commit key is one unpack or one decode.
    """
    heads: dict[bytes, tuple[str, str]] = {}
    out = []
    for key in keys:
        end = key.index(0, 1)
        head = heads.get(key[:end])
        if head is None:
            t = _BY_CODE.get(key[0])  # None for a commit reference (high bit set)
            if t is not None and t.id_kind in ("int", "sha"):
                head = (t.id_kind, f"{TAGS[t.name]}:{key[1:end].decode()}:")
            else:
                head = ("", "")
            heads[key[:end]] = head
        kind, prefix = head
        if kind == "int":
            out.append(prefix + str(_unpack(key, end + 1)[0]))
        elif kind == "sha":  # the stored key: position, then the sha and its NUL
            out.append(prefix + key[end + 9 : -1].decode())
        else:
            out.append(format_key(key))
    return out


#: ``<code><source>\0`` of a numeric-id key (everything but its 8-byte id) -> ``issue:gitlab:``,
#: filled by format_key: a key of a numeric-id type is its head and 8 bytes, and no other
#: key starts with such a head (the code byte tells the types apart)
_INT_TEXT: dict[bytes, str] = {}


@lru_cache(maxsize=1 << 16)
def format_key(key: bytes) -> str:
    """``issue:gitlab:1234``: the text form of a key (cached: outbox records repeat keys).

    A numeric id of a ``type:source`` seen before is one dict lookup and one
    unpack on a cache miss (0.71 µs instead of 1.23, 200,000 distinct ids,
    median of 5: a neighbours answer of 100 ids is mostly misses).
    """
    head = _INT_TEXT.get(key[:-8])
    if head is not None:
        return head + str(_unpack(key, len(key) - 8)[0])
    t = _BY_CODE.get(key[0] & 0x7F)
    if t is None:
        return key.hex()
    end = key.index(0, 1)
    source = key[1:end].decode()
    rest = key[end + 1 :]
    if t.id_kind == "int":
        local = str(_unpack(rest)[0])
        if len(_INT_TEXT) < _MAX_HEADS and len(rest) == 8:
            _INT_TEXT[key[: end + 1]] = f"{TAGS[t.name]}:{source}:"
    elif t.id_kind == "sha":
        local = (rest if key[0] == COMMIT_REF else rest[8:])[:-1].decode()
    else:
        local = f"{_unpack(rest)[0]}:{_KIND_NAME.get(rest[8], '?')}:{rest[9:-1].decode(errors='replace')}"
    return f"{TAGS[t.name]}:{source}:{local}"


#: ``issue:gitlab`` as a caller wrote it -> (key prefix, ``issue:gitlab:`` as format_key
#: writes it, numeric id or sha), for every type but refs: filled by parse_key for
#: known_id
_HEADS: dict[str, tuple[bytes, str, bool]] = {}
_MAX_HEADS = 4096
#: the longest decimal number that always fits a key's 8 bytes (2**64 has 20 digits)
_SAFE_DIGITS = 19


def parse_id(text: str) -> tuple[bytes, str]:
    """The key named by ``type:source:id`` and the id's text as :func:`format_key` writes it."""
    found = known_id(text)
    if found is None:
        key = parse_key(text)
        return key, format_key(key)
    return found


def known_id(text: str) -> tuple[bytes, str] | None:
    """:func:`parse_id` in one dict lookup, for an id whose ``type:source`` was parsed
    before (None otherwise, or when the id is not well formed: ask parse_id).

    A graph query's own work is a few LMDB reads, so parsing the id the long
    way was a good part of a node lookup (~6 µs of ~35, measured with the
    CPU caches cold). A commit comes back as its commit reference.
    """
    head, _, local = text.rpartition(":")
    known = _HEADS.get(head)
    if known is not None:
        prefix, canonical, numeric = known
        if not numeric:
            if local:
                sha = local.lower()
                return prefix + sha.encode() + b"\0", canonical + sha
        elif len(local) <= _SAFE_DIGITS and local.isdecimal():
            number = int(local)
            return prefix + _Q.pack(number), canonical + str(number)
    return None


def parse_key(text: str) -> bytes:
    """The key named by ``type:source:id`` (the inverse of :func:`format_key`)."""
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise QueryError(
            f"node id {text!r} is not of the form type:source:id"
            " - e.g. issue:gitlab:1234, commit:gitlab:9fceb02, ref:gitlab:7:branch:main"
        )
    tag, source, local = parts
    t = _BY_TAG.get(tag.lower())
    if t is None:
        known = ", ".join(sorted(TAGS.values()))
        raise QueryError(f"unknown node type {tag!r} in {text!r} - known types: {known}")
    if t.id_kind == "int":
        # isdecimal, not isdigit: int() refuses digits such as "²" that isdigit accepts
        if not local.isdecimal():
            raise QueryError(f"{TAGS[t.name]} ids are numbers, got {local!r} in {text!r}")
        number = int(local)
        if number >= 1 << 64:
            raise QueryError(f"{TAGS[t.name]} ids are below 2**64, got {local} in {text!r}")
        _remember_head(tag, source, t, numeric=True)
        return int_key(t.name, source, number)
    if t.id_kind == "sha":
        _remember_head(tag, source, t, numeric=False)
        return commit_ref(source, local)
    ref = local.split(":", 2)
    if len(ref) != 3 or not ref[0].isdecimal() or ref[1] not in _KIND_BYTE:
        raise QueryError(
            f"ref ids are project:kind:name, got {local!r} in {text!r} - e.g. ref:gitlab:7:branch:main"
        )
    if len(ref[0]) > 20 or int(ref[0]) >= 1 << 64:
        raise QueryError(f"project ids are below 2**64, got {ref[0][:40]} in the ref id {text[:80]!r}")
    return ref_key(source, int(ref[0]), ref[1], ref[2])


def _remember_head(tag: str, source: str, t: NodeType, *, numeric: bool) -> None:
    """Let parse_id parse ``tag:source:...`` ids in one step from now on (a bounded table)."""
    if len(_HEADS) < _MAX_HEADS:
        first = bytes([COMMIT_REF]) if not numeric else CODES[t.name]
        _HEADS[f"{tag}:{source}"] = (first + source_prefix(source), f"{TAGS[t.name]}:{source}:",
                                     numeric)
