"""Projection versions on disk: the ACTIVE pointer, states, promote, rollback, drop.

Layout under ``<projections_dir>/<name>/``::

    ACTIVE          "v2\\n": the version readers use (replaced atomically)
    ACTIVE.stamp    8 bytes rewritten in place after each switch of ACTIVE:
                    readers map it and notice a switch without a system call
    ACTIVE.lock     flock held while a promotion or rollback checks and switches
    v1/             an LMDB environment (data.mdb, lock.mdb) ...
    v1/version.json its bookkeeping: state, timestamps, the version it replaced
    v1/writer.lock  flock held by the one process writing the version

States: ``building`` (a rebuild has not finished), ``ready`` (built and
caught up, waiting for promotion), ``active`` (ACTIVE names it) and
``retired`` (was active, or was rolled back from; kept for rollback until
dropped). Switching ACTIVE is a single ``os.replace``; readers that hold the
old version's environment open keep reading it undisturbed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from projections.errors import UnknownVersion, VersionStateError
from projections.store.files import fsync_dir, write_atomic
from projections.store.lock import WriterLock

log = logging.getLogger(__name__)

__all__ = ["Versions", "VersionInfo", "ACTIVE_FILE", "STAMP", "STAMP_BYTES", "parse_version", "read_meta",
           "stamp_switch"]

_DIR = re.compile(r"^v([0-9]+)$")
_ASIDE = re.compile(r"^v([0-9]+)\.damaged-([0-9]+)$")
BUILDING, READY, ACTIVE, RETIRED = "building", "ready", "active", "retired"


def parse_version(text: str | int) -> int:
    """``"v3"``, ``"3"`` or ``3`` -> 3."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"v?([0-9]+)", text.strip())
    if match is None:
        raise UnknownVersion(f"{text!r} is not a version - write it as v<N>, e.g. v2")
    return int(match.group(1))


@dataclass(frozen=True)
class VersionInfo:
    """One version directory and its bookkeeping."""

    version: int
    path: Path
    state: str
    created_at: float | None = None
    built_at: float | None = None
    promoted_at: float | None = None
    retired_at: float | None = None
    previous: int | None = None


#: the pointer file: the name of the version readers use, replaced atomically
ACTIVE_FILE = "ACTIVE"
#: the file whose 8 bytes change (in place) after every switch of ACTIVE
STAMP = "ACTIVE.stamp"
STAMP_BYTES = 8


def stamp_switch(root: Path) -> None:
    """Tell readers that ACTIVE under ``root`` changed: new random bytes in ``ACTIVE.stamp``.

    The file is written in place and never replaced or shortened, so a
    reader can keep it mapped (:class:`projections.read.reader.GraphReader`).
    Random bytes need no read-modify-write, hence no lock between two
    processes switching at once. No fsync: after a crash every reader
    starts afresh and reads ACTIVE itself.

    The switch has happened when this runs, so a stamp that cannot be
    written does not undo or fail it: readers then follow within
    ``POINTER_RECHECK_NS`` (a second), and the warning says so.
    """
    try:
        fd = os.open(root / STAMP, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            os.pwrite(fd, os.urandom(STAMP_BYTES), 0)
        finally:
            os.close(fd)
    except OSError as e:
        log.warning("could not rewrite ACTIVE.stamp: queries follow the switch of ACTIVE within"
                    " a second instead of at once", extra={"path": str(root / STAMP), "error": str(e)})


def read_meta(version_dir: Path) -> dict:
    """The bookkeeping (``version.json``) of a version folder; empty when it has none."""
    try:
        return json.loads((Path(version_dir) / "version.json").read_text())
    except FileNotFoundError:
        return {}


class Versions:
    """The versions of projection ``name`` under ``projections_dir``."""

    def __init__(self, projections_dir: str | Path, name: str = "graph") -> None:
        self.name = name
        self.root = Path(projections_dir) / name

    # -- reading -----------------------------------------------------------

    def path(self, version: int) -> Path:
        """The directory of ``version`` (which may not exist)."""
        return self.root / f"v{version}"

    def active(self) -> int | None:
        """The active version, or None before the first promotion."""
        try:
            text = (self.root / ACTIVE_FILE).read_text().strip()
        except FileNotFoundError:
            return None
        return parse_version(text) if text else None

    def exists(self, version: int) -> bool:
        """Whether ``version`` has a directory."""
        return self.path(version).is_dir()

    def _meta(self, version: int) -> dict:
        return read_meta(self.path(version))

    def info(self, version: int) -> VersionInfo:
        """Bookkeeping of one version; raises :class:`UnknownVersion` if absent."""
        if not self.exists(version):
            known = ", ".join(f"v{v.version}" for v in self.list()) or "none"
            raise UnknownVersion(
                f"{self.name} has no version v{version} (versions on disk: {known})"
            )
        meta = self._meta(version)
        state = ACTIVE if self.active() == version else meta.get("state", BUILDING)
        if state == ACTIVE and self.active() != version:
            state = RETIRED
        return VersionInfo(
            version=version, path=self.path(version), state=state,
            created_at=meta.get("created_at"), built_at=meta.get("built_at"),
            promoted_at=meta.get("promoted_at"), retired_at=meta.get("retired_at"),
            previous=meta.get("previous"),
        )

    def list(self) -> list[VersionInfo]:
        """Every version on disk, oldest first."""
        if not self.root.is_dir():
            return []
        found = sorted(int(m.group(1)) for p in self.root.iterdir() if (m := _DIR.match(p.name)))
        return [self.info(v) for v in found]

    # -- changing ----------------------------------------------------------

    def _update(self, version: int, **changes: object) -> None:
        meta = self._meta(version)
        meta.update(changes)
        write_atomic(self.path(version) / "version.json", json.dumps(meta, indent=2) + "\n")

    def create(self, version: int) -> Path:
        """Make the directory of a new version in state ``building``."""
        path = self.path(version)
        path.mkdir(parents=True, exist_ok=True)
        if not (path / "version.json").exists():
            self._update(version, state=BUILDING, created_at=time.time())
        return path

    def mark_ready(self, version: int) -> None:
        """Record that ``version`` finished its rebuild."""
        self._update(version, state=READY, built_at=time.time())

    def mark_building(self, version: int) -> None:
        """Record that ``version`` is being (re)built."""
        self._update(version, state=BUILDING)

    @contextmanager
    def _switching(self) -> Iterator[None]:
        """Hold the pointer's lock: one check-and-switch of ACTIVE at a time, across processes."""
        self.root.mkdir(parents=True, exist_ok=True)
        lock = WriterLock(self.root, name="ACTIVE.lock", what=f"{self.name}'s ACTIVE pointer")
        lock.acquire(wait_secs=10)
        try:
            yield
        finally:
            lock.release()

    def promote(self, version: int) -> int | None:
        """Make ``version`` active (one atomic pointer switch); returns the previous one.

        A compare-and-set: it never replaces a newer active version (only
        :meth:`rollback`, an operator's decision, goes back).
        """
        with self._switching():
            info = self.info(version)
            if info.state == BUILDING:
                raise VersionStateError(
                    f"{self.name} v{version} is still building - `fleet replay {self.name}` finishes it"
                )
            previous = self.active()
            if previous == version:
                return previous
            if previous is not None and previous > version:
                raise VersionStateError(
                    f"{self.name} v{previous} is active and newer than v{version} - a promotion never"
                    f" replaces a newer version; `fleet rollback {self.name}` is the way back")
            # The pointer is the switch; the version's own state follows it. Marked active
            # first, a crash before the switch left a version that reads as retired (active
            # in its record, not the pointer's): never built again, and nothing active.
            self._update(version, promoted_at=time.time(),
                         previous=previous if previous is not None else info.previous)
            write_atomic(self.root / ACTIVE_FILE, f"v{version}\n")
            stamp_switch(self.root)
            self._update(version, state=ACTIVE)
            if previous is not None and self.exists(previous):
                self._update(previous, state=RETIRED, retired_at=time.time())
            return previous

    def rollback(self) -> tuple[int, int]:
        """Re-activate the version the active one replaced; returns (from, to)."""
        with self._switching():
            current = self.active()
            if current is None:
                raise VersionStateError(
                    f"{self.name} has no active version to roll back from - `fleet replay"
                    f" {self.name}` builds and promotes the first one")
            previous = self.info(current).previous
            if previous is None or not self.exists(previous):
                raise VersionStateError(
                    f"{self.name} v{current} replaced no version that is still on disk - nothing to"
                    f" roll back to (`fleet projections` lists the versions on disk)"
                )
            if self.info(previous).state == BUILDING:
                raise VersionStateError(f"{self.name} v{previous} never finished building")
            self._update(previous, state=ACTIVE, promoted_at=time.time())
            write_atomic(self.root / ACTIVE_FILE, f"v{previous}\n")
            stamp_switch(self.root)
            self._update(current, state=RETIRED, retired_at=time.time())
            return current, previous

    def set_aside(self, version: int) -> Path:
        """Move a damaged version out of the way, to ``v<N>.damaged-<unix time>``.

        If it was active, no version is active from then on (queries say so)
        until a rebuild promotes one; the directory is kept for inspection.
        An empty ``v<N>`` in state ``building`` takes its place, marked as a
        reincarnation: its changes must not reuse the message ids the damaged
        one may have published (see :mod:`workers.changefeed.lane`).
        """
        previous = self._meta(version).get("previous")  # kept: rollback still goes there
        if self.active() == version:
            (self.root / ACTIVE_FILE).unlink(missing_ok=True)
            stamp_switch(self.root)
        target = self.root / f"v{version}.damaged-{int(time.time())}"
        os.replace(self.path(version), target)
        self.path(version).mkdir()
        self._update(version, state=BUILDING, created_at=time.time(), reincarnation_of=target.name,
                     previous=previous)
        fsync_dir(self.root)  # the rename and the new folder
        return target

    def mark_reincarnation(self, version: int, of: str) -> None:
        """Record that ``version`` is built again after an incarnation that published changes."""
        self._update(version, reincarnation_of=of)

    def reincarnation_of(self, version: int) -> str | None:
        """The damaged copy ``version`` is being rebuilt in place of (None for a first build)."""
        return self._meta(version).get("reincarnation_of")

    def set_aside_dirs(self) -> list[Path]:
        """Versions set aside after a machine crash (:meth:`set_aside`), oldest first."""
        if not self.root.is_dir():
            return []
        found = [(int(m.group(2)), p) for p in self.root.iterdir() if (m := _ASIDE.match(p.name))]
        return [p for _, p in sorted(found)]

    def drop(self, version: int) -> None:
        """Delete a version that is not active and not being written."""
        info = self.info(version)
        if info.state == ACTIVE:
            raise VersionStateError(
                f"{self.name} v{version} is active - promote or roll back to another version first"
            )
        with WriterLock(info.path, what=f"{self.name} v{version}"):
            shutil.rmtree(info.path)
