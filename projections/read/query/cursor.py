"""Cursors of the query language: where the next page starts, bound to its query.

A cursor is URL-safe base64 of a small JSON object: the fingerprint of the
query (its document without ``cursor``, ``limit`` and ``budget``, hashed) and
the sort key of the last item sent. The next page is the items whose sort key
comes after it (keyset paging), so a page neither repeats nor skips an item of
an unchanged graph, whatever was added or removed elsewhere in between.
"""

from __future__ import annotations

import base64
import binascii
import hashlib

import msgspec

from .schema import InvalidQuery

__all__ = ["decode", "encode", "fingerprint"]

_VERSION = 1


def fingerprint(query: msgspec.Struct) -> str:
    """A short hash of what the query asks (page size, budget and cursor aside)."""
    fields = {"cursor": None, "budget": None}
    if hasattr(query, "limit"):
        fields["limit"] = 1
    if not hasattr(query, "cursor"):
        fields.pop("cursor")
    bare = msgspec.structs.replace(query, **fields)
    return hashlib.blake2b(msgspec.json.encode(bare), digest_size=8).hexdigest()


def encode(fingerprint_: str, after: list) -> str:
    """The cursor of the page after the item whose sort key is ``after``."""
    raw = msgspec.json.encode({"v": _VERSION, "q": fingerprint_, "a": after})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(text: str, fingerprint_: str) -> list:
    """The sort key a cursor carries; :class:`InvalidQuery` at ``$.cursor`` when it is not one
    of this query's."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        found = msgspec.json.decode(raw)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidQuery("$.cursor", "not a cursor of this API - pass the `cursor` of the "
                           "previous answer unchanged") from None
    if not isinstance(found, dict) or found.get("v") != _VERSION or not isinstance(found.get("a"), list):
        raise InvalidQuery("$.cursor", "not a cursor of this API - pass the `cursor` of the "
                           "previous answer unchanged")
    if found.get("q") != fingerprint_:
        raise InvalidQuery("$.cursor", "this cursor belongs to another query - send the same "
                           "document with only `cursor` (and `limit`) changed")
    return found["a"]
