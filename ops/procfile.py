"""The fleet's processes, as the Procfile lists them, and a reader for Procfiles."""

from __future__ import annotations

from pathlib import Path

__all__ = ["FLEET_PROCESSES", "read_procfile"]

#: name -> command; the repository's Procfile says the same (a test checks).
FLEET_PROCESSES: dict[str, str] = {
    "nats": "fleet nats",
    "ingest": "fleet ingest",
    "worker": "fleet worker",
    "api": "fleet api",
}


def read_procfile(path: Path) -> dict[str, str]:
    """Parse ``name: command`` lines (comments and blank lines skipped)."""
    processes: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, command = line.partition(":")
        if not sep or not name.strip() or not command.strip():
            raise ValueError(f"{path}:{number}: expected `name: command`, got {line!r}")
        processes[name.strip()] = command.strip()
    return processes
