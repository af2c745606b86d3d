"""What an overlay slot holds besides a property dict: sentinels and blind stubs."""

from __future__ import annotations

__all__ = ["ABSENT", "MISSING", "TOMB", "Stub"]


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


ABSENT = _Sentinel("ABSENT")  # not in the overlay
MISSING = _Sentinel("MISSING")  # known not to exist
TOMB = _Sentinel("TOMB")  # deleted: later mutations are ignored


class Stub:
    """A node ensured or created blind: written with ``props`` at flush if absent;
    if present, left alone (ENSURE) or given ``props`` beneath its own (CREATE)."""

    __slots__ = ("props", "beneath")

    def __init__(self, props: dict, beneath: bool = False) -> None:
        self.props = props
        self.beneath = beneath

