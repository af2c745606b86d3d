"""Durable small files beside the LMDB environments: atomic replace, folder fsync."""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["fsync_dir", "write_atomic"]


def fsync_dir(path: Path) -> None:
    """Make the entries of folder ``path`` (new, renamed or removed files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` durably (temporary file, fsync, rename, fsync of the folder)."""
    # Unique per thread too: two threads of one process replacing the same file must not share
    # (and truncate) one temporary file, or one of them renames an empty file into place.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
