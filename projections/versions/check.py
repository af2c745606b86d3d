"""``fleet replay --check``: a fresh build of the active version compared with the live one.

The active version is copied as it stands (LMDB's consistent copy, while the
projector goes on writing it), the code's version is built from the log
beside it up to exactly the copy's position, and the two digests are
compared (DESIGN invariant 5). Nothing is promoted; both copies are deleted.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from projections.errors import NoActiveVersion, VersionStateError
from projections.fold.engine import DEFAULT_BUDGET_BYTES
from projections.model.ontology import NAME, VERSION
from projections.store.graph import GraphStore
from projections.versions.catalog import Versions
from projections.versions.digest import digest
from projections.versions.rebuild import RebuildProgress, rebuild

__all__ = ["CheckResult", "check_active"]


@dataclass(frozen=True)
class CheckResult:
    """The live version's digest and a fresh build's, at the same log position."""

    projection: str
    version: int
    position: int
    live_digest: str
    fresh_digest: str
    poisoned: int
    secs: float

    @property
    def equal(self) -> bool:
        """Whether the live version is what its code builds from the log."""
        return self.live_digest == self.fresh_digest

    def as_dict(self) -> dict:
        """The result as plain data (``--json``)."""
        return asdict(self) | {"equal": self.equal}


def check_active(log_path: str | Path, projections_dir: str | Path, *, name: str = NAME,
                 version: int = VERSION, budget_bytes: int = DEFAULT_BUDGET_BYTES,
                 progress: Callable[[RebuildProgress], None] | None = None,
                 scratch_dir: str | Path | None = None) -> CheckResult:
    """Rebuild the active version beside it, without promoting, and compare digests."""
    started = time.perf_counter()
    versions = Versions(projections_dir, name)
    active = versions.active()
    if active is None:
        raise NoActiveVersion(f"{name} has no active version to check - `fleet replay {name}` builds one")
    if active != version:
        raise VersionStateError(
            f"{name} v{active} is active but this code builds v{version} - a check compares the"
            f" active version with a fresh build by the same code; run it from v{active}'s release")
    scratch = Path(tempfile.mkdtemp(prefix=f".check-{name}-", dir=scratch_dir or versions.root))
    try:
        with GraphStore(versions.path(active)) as live:
            live.copy_to(scratch / "live")
        with GraphStore(scratch / "live") as copy:
            position, live_digest = copy.checkpoint(), digest(copy).hexdigest
        fresh = rebuild(log_path, scratch / "fresh", name=name, version=version, promote=False,
                        budget_bytes=budget_bytes, progress=progress, until=position)
        if fresh.digest is None or fresh.position != position:
            raise VersionStateError(f"the fresh build of {name} v{version} stopped at position"
                                    f" {fresh.position}, not {position}: the log is shorter than the live version")
        return CheckResult(name, version, position, live_digest, fresh.digest, fresh.poisoned,
                           time.perf_counter() - started)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
