"""One writer process per folder: an exclusive, non-blocking ``flock``."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from projections.errors import StoreBusy

__all__ = ["WriterLock"]


class WriterLock:
    """An exclusive, non-blocking flock: one writer process at a time.

    On a version (``writer.lock`` in its folder), LMDB already serialises
    write transactions; this lock keeps a second projector or rebuild from
    writing the same version with stale in-memory state (tombstones) and
    makes ``drop`` refuse a version in use. The log writer of an ingest
    consumer takes one beside the log (``name``).
    """

    def __init__(self, version_dir: Path, *, what: str = "projection version",
                 name: str = "writer.lock") -> None:
        self.path = Path(version_dir) / name
        self.what = what
        self._fd: int | None = None

    def acquire(self, *, wait_secs: float = 0.0) -> "WriterLock":
        """Take the lock, waiting up to ``wait_secs``, or raise :class:`StoreBusy` naming the holder's pid."""
        deadline = time.monotonic() + wait_secs
        while True:
            try:
                return self._try_acquire()
            except StoreBusy:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _try_acquire(self) -> "WriterLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise StoreBusy(f"{self.what} is being written by another process (pid {holder})") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def release(self) -> None:
        """Release the lock (idempotent)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
