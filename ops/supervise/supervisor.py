"""The supervisor: run the Procfile's processes, restart what exits, stop everything cleanly.

Each process runs in its own process group; one that exits is started again
after :func:`backoff_secs` while the others keep running. A stop sends
SIGTERM to every group, the ``nats`` process last, and SIGKILL only to a
group still there after the grace period.
"""

from __future__ import annotations

import datetime
import fcntl
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from events.errors import ConfigError

from .state import (
    DEFAULT_GRACE_SECS,
    REQUESTS_DIR,
    STATE_FILE,
    ChildState,
    process_start,
    read_state,
    state_dir,
    take_requests,
    write_json,
)

__all__ = ["BACKOFF_BASE_SECS", "BACKOFF_CAP_SECS", "RESET_AFTER_SECS", "STOPPED_LAST", "Supervisor",
           "backoff_secs"]

#: the first restart's delay; it doubles with each exit in a row up to the cap
BACKOFF_BASE_SECS = 1.0
BACKOFF_CAP_SECS = 30.0
#: a process that stayed up this long starts its back-off from the base again
RESET_AFTER_SECS = 30.0
#: stopped after every other process (they flush acks and heartbeats through it)
STOPPED_LAST = frozenset({"nats"})
_TICK_SECS = 0.2
#: a Procfile line is a shell command: pipes, variables, && ... need a shell
_SHELL_SYNTAX = re.compile(r"[|&;<>()$`*?\[\]{}~]")
_SYSTEM = "fleet"


def backoff_secs(exits_in_a_row: int, *, base_secs: float = BACKOFF_BASE_SECS,
                 cap_secs: float = BACKOFF_CAP_SECS) -> float:
    """The delay before restarting a process that exited ``exits_in_a_row`` times (>= 1) in a row."""
    return min(cap_secs, base_secs * 2 ** max(0, exits_in_a_row - 1))


@dataclass
class _Child:
    name: str
    colour: str | None
    info: ChildState
    proc: subprocess.Popen | None = None
    exits_in_a_row: int = 0
    restart_requested: bool = False
    kill_at: float | None = None  # SIGKILL if still running then
    readers: list[threading.Thread] = field(default_factory=list)


class Supervisor:
    """Run ``processes`` (name -> command line) until :meth:`stop` or SIGTERM/SIGINT.

    Output lines are printed with a ``HH:MM:SS name |`` prefix (coloured on
    a terminal) by honcho's printer.
    """

    def __init__(self, processes: dict[str, str], *, env: dict[str, str], data_dir: Path,
                 grace_secs: float = DEFAULT_GRACE_SECS, backoff_base_secs: float = BACKOFF_BASE_SECS,
                 backoff_cap_secs: float = BACKOFF_CAP_SECS, reset_after_secs: float = RESET_AFTER_SECS,
                 output: IO[str] | None = None, cwd: Path | None = None) -> None:
        from honcho.colour import get_colours
        from honcho.printer import Printer

        if not processes:
            raise ConfigError("no processes to run - the Procfile is empty")
        self.grace_secs = grace_secs
        self.backoff_base_secs = backoff_base_secs
        self.backoff_cap_secs = backoff_cap_secs
        self.reset_after_secs = reset_after_secs
        self.data_dir = Path(data_dir)
        self.dir = state_dir(self.data_dir)
        self._env = env
        self._cwd = cwd
        colours = get_colours()
        # nats first: the others wait for it at start anyway, and it is stopped last
        order = sorted(processes, key=lambda n: n not in STOPPED_LAST)
        self._children = {n: _Child(n, next(colours), ChildState(processes[n])) for n in order}
        self._printer = Printer(output or sys.stdout, width=max(len(_SYSTEM), *map(len, processes)))
        self._lines: queue.Queue[tuple[str, str]] = queue.Queue()
        self._stop = threading.Event()
        self._asked: queue.SimpleQueue[str] = queue.SimpleQueue()
        self._lock_file: IO | None = None
        self._started_at = time.time()
        self.killed: list[str] = []  # processes that needed SIGKILL during the final stop
        self._signal: int | None = None
        self._run_thread: int | None = None

    # -- the public surface ------------------------------------------------------

    def run(self, *, before_start: Callable[[], None] | None = None) -> int:
        """Start every process, supervise until a stop, stop them all; 0, or 1 when one needed SIGKILL.

        ``before_start`` runs once this supervisor holds the data dir and what a
        supervisor that died left running is stopped (e.g. port checks).
        """
        self._run_thread = threading.get_ident()
        self._take_lock()
        (self.dir / REQUESTS_DIR).mkdir(parents=True, exist_ok=True)
        previous = {}
        if threading.current_thread() is threading.main_thread():
            previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self._stop_leftovers()
            if before_start is not None:
                before_start()
            for child in self._children.values():
                self._start(child)
            self._write_state()
            while not self._stop.is_set():
                self._tick()
            if self._signal is not None:
                self.say(f"{signal.Signals(self._signal).name} received: stopping every process"
                         f" (grace {self.grace_secs:g}s each)")
            self._stop_all()
        finally:
            self._write_state(running=False)
            self._release_lock()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 1 if self.killed else 0

    def stop(self) -> None:
        """Ask :meth:`run` to stop every process and return (any thread)."""
        self._stop.set()

    def restart(self, name: str) -> None:
        """Ask for a restart of ``name`` (any thread): SIGTERM, then start again at once."""
        if name not in self._children:
            raise ConfigError(f"no process {name!r} - running: {', '.join(self._children)}")
        self._asked.put(name)

    def say(self, text: str) -> None:
        """Print a line of the supervisor's own (prefixed ``fleet``); from any thread."""
        if threading.get_ident() == self._run_thread:
            self._print(_SYSTEM, None, text)
        else:  # printed by the loop, between the processes' lines
            self._lines.put((_SYSTEM, text))

    # -- the loop -------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: Any) -> None:
        # no printing here: the handler may interrupt a print of the same thread
        if self._signal is None:
            self._signal = signum
        self._stop.set()

    def _tick(self) -> None:
        self._pump(_TICK_SECS)
        changed = False
        now = time.monotonic()
        for name in self._read_requests():
            self._asked.put(name)
        while not self._asked.empty():
            changed |= self._begin_restart(self._children[self._asked.get()])
        for child in self._children.values():
            if child.proc is not None and child.proc.poll() is not None:
                self._on_exit(child)
                changed = True
            elif child.proc is not None and child.kill_at is not None and now >= child.kill_at:
                self._kill(child, child.proc.pid,
                           f"{child.name} did not stop within {self.grace_secs:g}s of SIGTERM")
            elif child.proc is None and child.info.next_start_at is not None and \
                    time.time() >= child.info.next_start_at:
                self._start(child)
                changed = True
        if changed:
            self._write_state()

    def _start(self, child: _Child) -> None:
        info = child.info
        try:
            child.proc = subprocess.Popen(
                _argv(info.command), env=self._env, cwd=self._cwd, start_new_session=True,
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        except OSError as e:
            self.say(f"cannot start {child.name} ({info.command}): {e}")
            child.exits_in_a_row += 1
            self._schedule(child, exit_code=None)
            return
        if info.starts:
            info.restarts += 1
        info.starts += 1
        info.pid, info.state, info.since, info.next_start_at = child.proc.pid, "running", time.time(), None
        info.pid_started = process_start(info.pid)
        child.kill_at, child.restart_requested = None, False
        self.say(f"{'restarting' if info.restarts else 'starting'} {child.name}: {info.command}"
                 f" (pid {info.pid}" + (f", restart {info.restarts})" if info.restarts else ")"))
        reader = threading.Thread(target=self._read, args=(child.name, child.proc.stdout),
                                  name=f"output-{child.name}", daemon=True)
        reader.start()
        child.readers = [r for r in child.readers if r.is_alive()] + [reader]

    def _read(self, name: str, stream: IO[bytes]) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                self._lines.put((name, raw.decode("utf-8", "replace").rstrip("\r\n")))

    def _pump(self, wait_secs: float) -> None:
        """Print the children's output lines, waiting up to ``wait_secs`` for the first."""
        try:
            name, line = self._lines.get(timeout=wait_secs)
        except queue.Empty:
            return
        self._print(name, self._colour(name), line)
        for _ in range(10_000):
            try:
                name, line = self._lines.get_nowait()
            except queue.Empty:
                return
            self._print(name, self._colour(name), line)

    def _colour(self, name: str) -> str | None:
        child = self._children.get(name)
        return child.colour if child is not None else None

    def _print(self, name: str, colour: str | None, text: str) -> None:
        from honcho.printer import Message

        self._printer.write(Message(type="line", data=text + "\n", time=datetime.datetime.now(),
                                    name=name, colour=colour))

    def _on_exit(self, child: _Child) -> None:
        assert child.proc is not None
        code = child.proc.returncode
        info = child.info
        ran_secs = time.time() - (info.since or time.time())
        _signal_group(child.proc.pid, signal.SIGTERM)  # what it started dies with it, as under systemd
        child.proc, info.pid, info.pid_started, child.kill_at = None, None, None, None
        info.last_exit, info.last_exit_at = code, time.time()
        if child.restart_requested:
            child.exits_in_a_row = 0
            self.say(f"{child.name} stopped ({_exit_text(code)}) for a restart")
            self._start(child)
            return
        child.exits_in_a_row = 1 if ran_secs >= self.reset_after_secs else child.exits_in_a_row + 1
        self._schedule(child, exit_code=code, ran_secs=ran_secs)

    def _schedule(self, child: _Child, *, exit_code: int | None, ran_secs: float | None = None) -> None:
        delay = backoff_secs(child.exits_in_a_row, base_secs=self.backoff_base_secs,
                             cap_secs=self.backoff_cap_secs)
        child.info.state, child.info.next_start_at = "backoff", time.time() + delay
        if exit_code is not None:
            self.say(f"{child.name} exited ({_exit_text(exit_code)}) after {ran_secs:.1f}s;"
                     f" starting it again in {delay:g}s ({child.exits_in_a_row} exit(s) in a row)")

    def _begin_restart(self, child: _Child) -> bool:
        if child.proc is None:  # in back-off, or never started: start it now
            child.exits_in_a_row = 0
            self._start(child)
            return True
        if child.restart_requested:
            return False
        child.restart_requested = True
        self._terminate(child)
        self.say(f"restart of {child.name} asked: SIGTERM sent to pid {child.info.pid}")
        return True

    def _terminate(self, child: _Child) -> None:
        assert child.proc is not None
        child.info.state = "stopping"
        child.kill_at = time.monotonic() + self.grace_secs
        _signal_group(child.proc.pid, signal.SIGTERM)

    def _kill(self, child: _Child, pgid: int, why: str) -> None:
        self.say(f"{why}: sending SIGKILL to its process group {pgid}")
        _signal_group(pgid, signal.SIGKILL)
        child.info.kills += 1
        child.kill_at = None

    def _stop_all(self) -> None:
        for phase in ([c for c in self._children.values() if c.name not in STOPPED_LAST],
                      [c for c in self._children.values() if c.name in STOPPED_LAST]):
            for child in phase:
                child.info.next_start_at = None
                if child.proc is None:
                    child.info.state = "stopped"
                elif child.kill_at is None:
                    self._terminate(child)
            self._write_state()
            deadline = time.monotonic() + self.grace_secs
            # done when its process has exited and nothing else is left in its group
            groups = {c.name: c.proc.pid for c in phase if c.proc is not None}
            while any(c.proc is not None for c in phase) or any(map(_group_alive, groups.values())):
                self._pump(0.05)
                for child in phase:
                    if child.proc is not None and child.proc.poll() is not None:
                        self._stopped(child)
                if time.monotonic() >= deadline:
                    for name, pgid in groups.items():
                        if _group_alive(pgid):
                            self.killed.append(name)
                            self._kill(self._children[name], pgid, f"{name} did not stop within"
                                                                   f" {self.grace_secs:g}s of SIGTERM")
                    for child in phase:
                        if child.proc is not None:
                            child.proc.wait()
                            self._stopped(child)
                    if any(map(_group_alive, groups.values())):
                        time.sleep(1)  # SIGKILL cannot be refused; give the kernel a moment
                    break
        for child in self._children.values():
            for reader in child.readers:
                reader.join(timeout=1)
        self._pump(0)
        self.say("every process stopped" + (f"; {', '.join(self.killed)} needed SIGKILL" if self.killed
                                            else " within its grace period"))

    def _stopped(self, child: _Child) -> None:
        assert child.proc is not None
        code = child.proc.returncode
        child.info.last_exit, child.info.last_exit_at = code, time.time()
        child.info.state, child.info.pid, child.info.pid_started, child.proc = "stopped", None, None, None
        self.say(f"{child.name} stopped ({_exit_text(code)})")

    def _stop_leftovers(self) -> None:
        """Stop what a supervisor that died (SIGKILL, a crash) left running on this data dir.

        Its processes run on in their own process groups; the state file names
        them, and their start times tell them from processes that reused a pid.
        """
        previous = read_state(self.data_dir)
        if previous is None:
            return
        left = {name: (info["pid"], info["pid_started"]) for name, info in previous.get("processes", {}).items()
                if info.get("pid") and info.get("pid_started")
                and process_start(info["pid"]) == info["pid_started"]}
        if not left:
            return
        self.say(f"the fleet up that ran before (pid {previous['supervisor'].get('pid')}) died and left "
                 + ", ".join(f"{n} (pid {pid})" for n, (pid, _) in left.items()) + " running: stopping them")
        # by process group from here: the kernel gives no new process the number of a live group
        for phase in ([n for n in left if n not in STOPPED_LAST], [n for n in left if n in STOPPED_LAST]):
            for name in phase:
                _signal_group(left[name][0], signal.SIGTERM)
            for sig, wait_secs in ((signal.SIGKILL, self.grace_secs), (None, 5.0)):
                deadline = time.monotonic() + wait_secs
                # a group outlives its first process while the processes it started run on
                while time.monotonic() < deadline and any(_group_alive(left[n][0]) for n in phase):
                    time.sleep(0.05)
                for name in phase:
                    pid = left[name][0]
                    if not _group_alive(pid):
                        continue
                    if sig is None:
                        self.say(f"{name} (pid {pid}) is still there after SIGKILL; going on")
                    else:
                        self.say(f"{name} (pid {pid}) did not stop within {self.grace_secs:g}s of SIGTERM:"
                                 " sending SIGKILL to its process group")
                        _signal_group(pid, sig)

    # -- files in DATA_DIR/supervisor -------------------------------------------------

    def _take_lock(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        lock = open(self.dir / "lock", "a+")  # noqa: SIM115 - held open while the supervisor runs
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            state = read_state(self.data_dir) or {}
            pid = state.get("supervisor", {}).get("pid", "?")
            raise ConfigError(f"a supervisor (pid {pid}) already runs the fleet on {self.data_dir} - stop it"
                              " first, or use `fleet restart NAME`") from None
        self._lock_file = lock

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def _write_state(self, *, running: bool = True) -> None:
        state = {
            "supervisor": {"pid": os.getpid(), "pid_started": process_start(os.getpid()),
                           "running": running, "started_at": self._started_at,
                           "updated_at": time.time(), "grace_secs": self.grace_secs},
            "processes": {n: asdict(c.info) for n, c in self._children.items()},
        }
        write_json(self.dir / STATE_FILE, state)

    def _read_requests(self) -> list[str]:
        found = []
        for name in take_requests(self.data_dir):
            if name in self._children:
                found.append(name)
            else:
                self.say(f"ignored a restart request for {name!r}: not one of {', '.join(self._children)}")
        return found


def _argv(command: str) -> list[str]:
    """A Procfile command's argv: run directly, or by ``/bin/sh`` when it uses shell syntax."""
    return ["/bin/sh", "-c", command] if _SHELL_SYNTAX.search(command) else shlex.split(command)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` runs (zombies waiting for their parent do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True
    for entry in entries:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and fields[2] == str(pgid):
                return True
    return False


def _exit_text(code: int | None) -> str:
    if code is None:
        return "did not start"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"
