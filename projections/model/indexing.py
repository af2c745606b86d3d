"""Derived keys of a node: property-index entries and unique lookups.

Both are pure functions of a node's key and properties, so the store can
keep them in step with every change (old keys out, new keys in) and a rebuild
produces exactly the same entries as the live projection.

* An **index** entry ``<index code><source>\\0<field values>`` (dupsort value:
  the node key) serves ``find`` with equality filters. Long strings are cut,
  so readers always re-check the properties.
* A **lookup** maps a name to one node: ``i`` + project + iid -> issue,
  ``m`` + project + iid -> merge request, ``r`` + path -> root group,
  ``c`` + parent group + path -> subgroup or project (paths lower-cased),
  ``p`` + full path -> a subgroup or project whose path is its full path
  (GitLab's system hooks, which do not name the parent; GitHub's ``owner/repo``).
  They resolve ``group/project#12`` through renames and transfers, since a
  rename only moves the renamed node's own entry.
"""

from __future__ import annotations

import hashlib
from typing import Any, Callable

from projections.model.keys import CODES, pack_int
from projections.model.ontology import INDEXES, Index

__all__ = [
    "INDEXED_CODES",
    "LOOKUP_CODES",
    "BLIND_CODES",
    "DERIVED_FIELDS",
    "index_keys",
    "index_prefix",
    "encode_value",
    "lookup_key",
    "iid_lookup",
    "root_lookup",
    "child_lookup",
    "path_lookup",
]

_STR_MAX = 200
_PATH_MAX = 300


def encode_value(value: Any) -> bytes:
    """A prefix-free encoding of an index field value (strings cut at 200 bytes)."""
    cls = value.__class__
    if cls is str:
        return b"s" + value.encode()[:_STR_MAX] + b"\0"
    if cls is int:
        return b"i" + pack_int(value) if value >= 0 else b"j" + str(value).encode() + b"\0"
    if value is None:
        return b"n"
    if value is True:
        return b"T"
    if value is False:
        return b"F"
    return b"s" + str(value).encode()[:_STR_MAX] + b"\0"


def _source(key: bytes) -> bytes:
    return key[1 : key.index(0, 1) + 1]


_BY_TYPE: dict[int, list[tuple[bytes, tuple[str, ...]]]] = {}
for _index in INDEXES:
    _BY_TYPE.setdefault(CODES[_index.node_type][0], []).append((bytes([_index.code]), _index.fields))


def index_prefix(index: Index, source: str | bytes, values: list[Any]) -> bytes:
    """The key (or key prefix, for fewer values) of ``index`` for ``values``."""
    s = source if isinstance(source, bytes) else source.encode() + b"\0"
    return bytes([index.code]) + s + b"".join(encode_value(v) for v in values)


def index_keys(key: bytes, props: dict | None) -> set[bytes]:
    """Every index entry key of a node (empty for a deleted one)."""
    indexes = _BY_TYPE.get(key[0])
    if not indexes or props is None:
        return set()
    s = key[1 : key.index(0, 1) + 1]
    get = props.get
    enc = encode_value
    out = set()
    for code, fields in indexes:
        k = code + s
        for f in fields:
            k += enc(get(f))
        out.add(k)
    return out


def iid_lookup(kind: bytes, source: bytes, project_id: int, iid: int) -> bytes:
    """Lookup key of issue (``b"i"``) or merge request (``b"m"``) ``iid`` of a project."""
    return kind + source + pack_int(project_id) + pack_int(iid)


def _path(path: str) -> bytes:
    """A path as lookup keys hold it: lower-cased, and hashed past 300 bytes.

    LMDB keys are at most 511 bytes and paths may be 1,000 characters: a long
    one keeps its first 300 bytes and a hash of the whole, like a long ref name.
    """
    raw = path.lower().encode()
    if len(raw) > _PATH_MAX:
        raw = raw[:_PATH_MAX] + b"~" + hashlib.blake2b(raw, digest_size=8).hexdigest().encode()
    return raw


def root_lookup(source: bytes, path: str) -> bytes:
    """Lookup key of a top-level group by path."""
    return b"r" + source + _path(path)


def child_lookup(group_key: bytes, path: str) -> bytes:
    """Lookup key of a subgroup or project of a group by path."""
    return b"c" + group_key + _path(path)


def path_lookup(source: bytes, path: str) -> bytes:
    """Lookup key of a subgroup or project by full path (``group/sub/project``, ``owner/repo``)."""
    return b"p" + source + _path(path)


def _group(key: bytes, props: dict) -> bytes | None:
    path = props.get("path")
    if path is None:
        return None
    if "/" in path:  # GitLab's subgroups carry their full path
        return path_lookup(_source(key), path)
    parent = props.get("parent_id")
    if parent is None:
        return root_lookup(_source(key), path)
    return child_lookup(CODES["Group"] + _source(key) + pack_int(parent), path)


def _project(key: bytes, props: dict) -> bytes | None:
    path, group = props.get("path"), props.get("group_id")
    if path is None:
        return None
    if group is None or "/" in path:  # a full path: the adapters' when the group is unknown
        return path_lookup(_source(key), path)
    return child_lookup(CODES["Group"] + _source(key) + pack_int(group), path)


def _iid(kind: bytes) -> Callable[[bytes, dict], bytes | None]:
    def lookup(key: bytes, props: dict) -> bytes | None:
        project, iid = props.get("project_id"), props.get("iid")
        if project is None or iid is None:
            return None
        return iid_lookup(kind, _source(key), project, iid)

    return lookup


_LOOKUPS: dict[int, Callable[[bytes, dict], bytes | None]] = {
    CODES["Group"][0]: _group,
    CODES["Project"][0]: _project,
    CODES["Issue"][0]: _iid(b"i"),
    CODES["MergeRequest"][0]: _iid(b"m"),
}


def lookup_key(key: bytes, props: dict | None) -> bytes | None:
    """The unique lookup entry a node owns, if its type has one."""
    fn = _LOOKUPS.get(key[0])
    if fn is None or props is None:
        return None
    return fn(key, props)


_LOOKUP_FIELDS = {
    CODES["Group"][0]: ("path", "parent_id"),
    CODES["Project"][0]: ("path", "group_id"),
    CODES["Issue"][0]: ("project_id", "iid"),
    CODES["MergeRequest"][0]: ("project_id", "iid"),
}
#: type code -> the properties its index entries and lookup are made of
DERIVED_FIELDS: dict[int, frozenset[str]] = {
    code: frozenset(_LOOKUP_FIELDS.get(code, ()))
    | frozenset(f for _, fields in _BY_TYPE.get(code, ()) for f in fields)
    for code in set(_BY_TYPE) | set(_LOOKUP_FIELDS)
}
#: type codes whose nodes have index entries / a lookup
INDEXED_CODES = frozenset(_BY_TYPE)
LOOKUP_CODES = frozenset(_LOOKUPS)
#: type codes whose writes need no prior read (no derived keys to keep in step)
BLIND_CODES = frozenset(CODES[name][0] for name in CODES) - INDEXED_CODES - LOOKUP_CODES
