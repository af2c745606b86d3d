"""Webhook adapters: GitLab and GitHub payloads -> canonical events.

Pure functions from a decoded payload to a :class:`Mapped`: the canonical
events it stands for, or the reason it stands for none. Nothing here does I/O
or reads the clock; event ids and times are derived from the payload (see
:mod:`events.adapters.common`).
"""

from __future__ import annotations

from .common import Mapped, parse_timestamp
from .github import map_github
from .gitlab import map_gitlab

__all__ = ["Mapped", "map_github", "map_gitlab", "parse_timestamp"]
