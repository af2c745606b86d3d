"""Decoding a webhook body, and a path-aware reader over the decoded payload.

Adapters read platform JSON through :class:`Node` so that every malformed
payload fails the same way: :class:`~events.errors.InvalidEvent` with reason
``schema`` and a message in msgspec's style that names the JSON path, e.g.
``Expected `int`, got `str` - at `$.object_attributes.id```.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, get_args

import msgspec

from ..codec import check_depth
from ..envelope import Id
from ..errors import InvalidEvent
from .common import parse_timestamp

__all__ = ["ID_MAX", "Node", "decode_payload", "type_name"]

#: the largest id a canonical event holds (the bound of :data:`events.envelope.Id`)
ID_MAX: int = get_args(Id)[1].le
_json = msgspec.json.Decoder()


def decode_payload(body: bytes) -> Any:
    """The JSON value of a webhook body.

    Raises :class:`~events.errors.InvalidEvent`: ``too_deep`` past
    :data:`~events.codec.MAX_DEPTH` levels (checked before the decoder
    recurses), ``not_json`` for a body that is not JSON (truncated, empty),
    ``schema`` for a number no decoder can hold (over 4,300 digits).
    """
    check_depth(body)
    try:
        return _json.decode(body)
    except msgspec.ValidationError as e:
        raise InvalidEvent("schema", f"{e} - numbers in a webhook body must fit in 64 bits") from e
    except msgspec.DecodeError as e:
        hint = " - the body is empty" if not body else ""
        raise InvalidEvent("not_json", f"body is not valid JSON ({len(body)} bytes): {e}{hint}") from e


def type_name(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


class Node:
    """One JSON object of a payload and its path from the root (``$.issue``)."""

    __slots__ = ("data", "path")

    def __init__(self, data: Any, path: str = "$") -> None:
        if not isinstance(data, Mapping):
            raise InvalidEvent(
                "schema", f"Expected `object`, got `{type_name(data)}` - at `{path}`"
            )
        self.data: Mapping[str, Any] = data
        self.path = path

    def at(self, key: str) -> str:
        """The JSON path of ``key`` inside this object."""
        return f"{self.path}.{key}"

    def has(self, key: str) -> bool:
        """Whether ``key`` is present and not null."""
        return self.data.get(key) is not None

    def _wrong(self, key: str, expected: str) -> InvalidEvent:
        got = type_name(self.data.get(key))
        return InvalidEvent("schema", f"Expected `{expected}`, got `{got}` - at `{self.at(key)}`")

    def _missing(self, key: str) -> InvalidEvent:
        return InvalidEvent("schema", f"Object missing required field `{key}` - at `{self.path}`")

    def _required(self, key: str) -> Any:
        value = self.data.get(key)
        if value is None:
            raise self._missing(key)
        return value

    # --- scalars -----------------------------------------------------------

    def opt_id(self, key: str) -> int | None:
        """A non-negative integer id, or None when absent or null."""
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(key, "int")
        if not 0 <= value <= ID_MAX:
            raise InvalidEvent("schema", _out_of_range(value, self.at(key)))
        return value

    def id(self, key: str) -> int:
        """A required non-negative integer id."""
        self._required(key)
        value = self.opt_id(key)
        assert value is not None
        return value

    def opt_text(self, key: str) -> str | None:
        """A string, or None when absent or null."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._wrong(key, "str")
        return value

    def text(self, key: str) -> str:
        """A required string (may be empty)."""
        self._required(key)
        value = self.opt_text(key)
        assert value is not None
        return value

    def flag(self, key: str, default: bool = False) -> bool:
        """A boolean; ``default`` when absent or null."""
        value = self.data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._wrong(key, "bool")
        return value

    def time(self, key: str) -> datetime | None:
        """A timestamp in any format the platforms send, as UTC; None when absent."""
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self._wrong(key, "str | int")
        try:
            return parse_timestamp(value)
        except ValueError as e:
            raise InvalidEvent("schema", f"{e} - at `{self.at(key)}`") from e

    # --- containers ----------------------------------------------------------

    def opt_obj(self, key: str) -> Node | None:
        """A nested object, or None when absent or null."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self._wrong(key, "object")
        return Node(value, self.at(key))

    def obj(self, key: str) -> Node:
        """A required nested object."""
        self._required(key)
        node = self.opt_obj(key)
        assert node is not None
        return node

    def _array(self, key: str) -> list[Any]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._wrong(key, "array")
        return value

    def objs(self, key: str) -> list[Node]:
        """An array of objects; empty when absent or null."""
        return [Node(item, f"{self.at(key)}[{i}]") for i, item in enumerate(self._array(key))]

    def ids(self, key: str) -> list[int]:
        """An array of non-negative integer ids; empty when absent or null."""
        out = []
        for i, item in enumerate(self._array(key)):
            if isinstance(item, bool) or not isinstance(item, int):
                raise InvalidEvent(
                    "schema",
                    f"Expected `int` >= 0, got `{type_name(item)}` - at `{self.at(key)}[{i}]`",
                )
            if not 0 <= item <= ID_MAX:
                raise InvalidEvent("schema", _out_of_range(item, f"{self.at(key)}[{i}]"))
            out.append(item)
        return out

    def object_ids(self, key: str) -> list[int]:
        """The ``id`` of every object in an array (labels, users); empty when absent."""
        return [item.id("id") for item in self.objs(key)]


def _out_of_range(value: int, path: str) -> str:
    bound = ">= 0" if value < 0 else f"<= {ID_MAX}"
    shown = str(value)
    if len(shown) > 40:
        shown = f"{shown[:20]}... ({len(shown.lstrip('-'))} digits)"
    return f"Expected `int` {bound}, got {shown} - at `{path}`"
