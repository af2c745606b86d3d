"""Cursors and bounded totals: how every list answer is cut into pages.

A cursor is the LMDB position of the last item a page holds, wrapped as
url-safe base64 (no padding, so no ``:`` or ``=``: it can never be taken for
a node id) around ``[format, kind, query fingerprint, position, checksum]``.
The next page seeks just past that position, so it costs what the page reads,
not what came before it. The fingerprint ties a cursor to the query that made
it and the checksum to its bytes: one given to another query (another node,
direction or filter), cut or altered is refused with
:class:`~projections.errors.QueryError` rather than answering nonsense.

Paging an unchanged graph yields every item exactly once, in key order. If
the graph changes between pages, items are still never repeated (positions
only move forward): an item removed before its page comes is left out, one
added before the cursor's position is not seen, one added after it is. After
a version switch a cursor goes on in the new version, in the same key order.
An empty ``after`` means the first page.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable

from projections.errors import QueryError

__all__ = ["COUNT_MAX", "LIMIT_MAX", "check_limit", "count_bounded", "decode_cursor",
           "encode_cursor", "fingerprint", "is_cursor"]

#: totals that need a scan are counted up to this many items, then given as a lower bound
COUNT_MAX = 10_000
#: largest page any list query answers
LIMIT_MAX = 100_000
#: longest text a cursor can be (a position holds at most an LMDB key and a little more)
_CURSOR_MAX_CHARS = 2048
_FORMAT = 1


def fingerprint(*parts: bytes | str | int | None) -> bytes:
    """Four bytes that tell one query (its kind and arguments) from another."""
    h = hashlib.blake2b(digest_size=4)
    for part in parts:
        raw = part if isinstance(part, bytes) else repr(part).encode()
        h.update(len(raw).to_bytes(4, "big") + raw)
    return h.digest()


def _checksum(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=4, person=b"fleet-cursor").digest()


def encode_cursor(kind: int, query: bytes, position: bytes) -> str:
    """The opaque text of a cursor: ``position`` in the query ``query`` of ``kind``."""
    raw = bytes((_FORMAT, kind)) + query + position
    return base64.urlsafe_b64encode(raw + _checksum(raw)).rstrip(b"=").decode("ascii")


def is_cursor(text: str) -> bool:
    """Whether ``text`` is shaped like a cursor rather than a node id (ids hold ``:``)."""
    return ":" not in text


def decode_cursor(text: str, kind: int, query: bytes) -> bytes:
    """The position a cursor made by the same query holds; :class:`QueryError` otherwise."""
    shown = text if len(text) <= 40 else f"{text[:20]}... ({len(text)} characters)"
    hint = "pass the `next` of the previous page of the same query, unchanged"
    if len(text) > _CURSOR_MAX_CHARS:
        raise QueryError(f"after={shown} is not a cursor (too long) - {hint}")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise QueryError(f"after={shown!r} is not a cursor (not url-safe base64) - {hint}") from None
    raw, check = raw[:-4], raw[-4:]
    if len(raw) < 2 + len(query) + 1 or raw[0] != _FORMAT or _checksum(raw) != check:
        raise QueryError(f"after={shown!r} is not a cursor (cut or altered) - {hint}")
    if raw[1] != kind or raw[2:2 + len(query)] != query:
        raise QueryError(f"after={shown!r} is a cursor of another query - {hint}")
    return raw[2 + len(query):]


def check_limit(limit: int, high: int = LIMIT_MAX) -> int:
    """``limit`` when it is a page size in 1..``high``; :class:`QueryError` otherwise."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= high:
        raise QueryError(f"limit={limit!r} is out of range 1..{high}")
    return limit


def count_bounded(items: Iterable, bound: int = COUNT_MAX) -> tuple[int, bool]:
    """``(count, is_lower_bound)``: how many ``items`` there are, counting at most ``bound``
    (then ``(bound, True)``: at least that many)."""
    n = 0
    for _ in items:
        if n == bound:
            return bound, True
        n += 1
    return n, False
