"""Sort keys of answers: JSON-safe, so the last item's is the next page's cursor."""

from __future__ import annotations

from .plan import Order

__all__ = ["compare", "compare_count", "sort_key"]


def sort_key(order: Order, key: bytes, props: dict | None, depth: int) -> list:
    """``[missing, rank, value, key hex]``: JSON-safe, the cursor of the item."""
    if order.by == "id":
        return [0, 1, key.hex(), key.hex()]
    value = depth if order.by == "depth" else (props or {}).get(order.by)
    if value is None:
        return [1, 0, 0, key.hex()]
    if hasattr(value, "timestamp"):
        return [0, 0, value.timestamp(), key.hex()]
    if isinstance(value, str):
        return [0, 1, value, key.hex()]
    return [0, 0, int(value) if isinstance(value, bool) else value, key.hex()]


def compare(a: list, b: list, desc: bool) -> int:
    """Order of two sort keys: present values first, by value (reversed when ``desc``),
    then by node key."""
    if a[0] != b[0]:
        return -1 if a[0] < b[0] else 1
    va, vb = (a[1], a[2]), (b[1], b[2])
    if va != vb:
        less = va < vb
        return (1 if less else -1) if desc else (-1 if less else 1)
    return (a[3] > b[3]) - (a[3] < b[3])


def compare_count(a: list, b: list, desc: bool) -> int:
    """Order of two groups ``[count, key text]`` by the first part (reversed when ``desc``),
    then the second."""
    if a[0] != b[0]:
        less = a[0] < b[0]
        return (1 if less else -1) if desc else (-1 if less else 1)
    return (a[1] > b[1]) - (a[1] < b[1])
