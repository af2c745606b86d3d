"""Size limits of canonical events, importable without the codec (settings read them at start-up)."""

from __future__ import annotations

__all__ = ["DEFAULT_MAX_EVENT_BYTES"]

#: The largest encoded event accepted unless FLEET_MAX_EVENT_BYTES says otherwise.
DEFAULT_MAX_EVENT_BYTES = 1024 * 1024
