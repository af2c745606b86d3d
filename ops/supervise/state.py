"""``DATA_DIR/supervisor``: the supervisor's state file and the restart requests it takes.

Written by :class:`~ops.supervise.supervisor.Supervisor`, read by ``fleet
health`` and ``fleet restart`` (any process on the host, no connection to
the supervisor needed); every file is replaced atomically.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events.errors import ConfigError, FleetError

__all__ = ["DEFAULT_GRACE_SECS", "REQUESTS_DIR", "STATE_FILE", "ChildState", "SupervisorError", "process_start",
           "read_state", "request_restart", "state_dir", "take_requests", "write_json"]

#: how long a stopping process may take before SIGKILL (``fleet up --grace-secs``)
DEFAULT_GRACE_SECS = 30.0
STATE_FILE = "state.json"
REQUESTS_DIR = "requests"


class SupervisorError(FleetError):
    """No supervisor runs on this data dir, or it did not do what was asked in time."""


def state_dir(data_dir: Path) -> Path:
    """``DATA_DIR/supervisor``: the state file, the lock and the request folder."""
    return Path(data_dir) / "supervisor"


@dataclass
class ChildState:
    """One supervised process, as the state file shows it."""

    command: str
    state: str = "starting"  # running | backoff | stopping | stopped
    pid: int | None = None
    pid_started: str | None = None  # :func:`process_start` of ``pid``
    starts: int = 0
    restarts: int = 0
    kills: int = 0  # times it needed SIGKILL
    since: float | None = None  # when the current run started
    last_exit: int | None = None  # exit code; -N when killed by signal N
    last_exit_at: float | None = None
    next_start_at: float | None = None  # in back-off: when it starts again


def write_json(path: Path, value: Any) -> None:
    """Replace ``path`` by ``value`` as JSON, atomically."""
    aside = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    aside.write_text(json.dumps(value, indent=1))
    os.replace(aside, path)


def process_start(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, from /proc): tells a reused pid apart.

    None when there is no such process, or only its zombie.
    """
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if len(fields) < 20 or fields[0] == "Z" else fields[19]


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return started is None or process_start(pid) in (None, started)


def read_state(data_dir: Path) -> dict[str, Any] | None:
    """The supervisor's state file for ``data_dir`` (None when no ``fleet up`` ever ran there).

    ``state["supervisor"]["running"]`` is true only while that supervisor
    process is alive; ``state["processes"][name]`` holds ``pid``, ``state``,
    ``starts``, ``restarts``, ``kills``, ``since``, ``last_exit``,
    ``last_exit_at`` (see :class:`ChildState`).
    """
    try:
        state = json.loads((state_dir(data_dir) / STATE_FILE).read_text())
    except (FileNotFoundError, NotADirectoryError):
        return None
    except ValueError:
        return None
    supervisor = state.setdefault("supervisor", {})
    if supervisor.get("running") and not _alive(int(supervisor.get("pid") or 0) or -1,
                                                supervisor.get("pid_started")):
        supervisor["running"] = False  # it died without writing its last state
    return state


def request_restart(data_dir: Path, name: str, *, timeout_secs: float | None = None,
                    poll_secs: float = 0.1) -> tuple[int | None, int | None]:
    """Ask the running supervisor to restart ``name``; wait for its new pid: (old pid, new pid).

    Raises :class:`SupervisorError` when no supervisor runs on ``data_dir``
    or the restart did not happen within ``timeout_secs`` (default: the
    supervisor's grace period plus 15 s), and :class:`ConfigError` for a
    name it does not run.
    """
    state = read_state(data_dir)
    if state is None or not state["supervisor"].get("running"):
        raise SupervisorError(f"no `fleet up` runs on {data_dir} (nothing in {state_dir(data_dir)}"
                              " says so) - start the fleet with `fleet up`, or restart the process with"
                              " your own supervisor (systemctl restart ...)")
    processes = state.get("processes", {})
    if name not in processes:
        raise ConfigError(f"`fleet up` on {data_dir} runs no process {name!r} - it runs"
                          f" {', '.join(processes) or 'nothing'}")
    before = processes[name]
    requests = state_dir(data_dir) / REQUESTS_DIR
    requests.mkdir(parents=True, exist_ok=True)
    write_json(requests / f"{time.time_ns()}-{uuid.uuid4().hex[:8]}.json", {"restart": name})
    if timeout_secs is None:
        timeout_secs = float(state["supervisor"].get("grace_secs") or DEFAULT_GRACE_SECS) + 15
    deadline = time.monotonic() + timeout_secs
    while time.monotonic() < deadline:
        time.sleep(poll_secs)
        state = read_state(data_dir)
        if state is None or not state["supervisor"].get("running"):
            raise SupervisorError(f"the supervisor on {data_dir} stopped before restarting {name}")
        now = state["processes"].get(name, {})
        if now.get("starts", 0) > before.get("starts", 0) and now.get("state") == "running":
            return before.get("pid"), now.get("pid")
    raise SupervisorError(f"{name} was not restarted within {timeout_secs:g}s - see `fleet up`'s output")


def take_requests(data_dir: Path) -> list[str]:
    """The process names of the restart requests waiting in ``data_dir``, oldest first; removed."""
    try:
        entries = sorted((state_dir(data_dir) / REQUESTS_DIR).iterdir())
    except FileNotFoundError:
        return []
    found = []
    for path in entries:
        if path.name.startswith("."):  # still being written
            continue
        try:
            name = json.loads(path.read_text())["restart"]
        except (OSError, ValueError, KeyError, TypeError):
            name = None
        path.unlink(missing_ok=True)
        found.append(str(name))
    return found
