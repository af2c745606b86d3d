"""Is a TCP port free to listen on, and if not, who holds it.

Called before a process binds (``fleet up``, ``fleet nats``, ``fleet api``),
so a taken port stops it at once with a message naming the port, the
process holding it (from ``/proc``, else ``ss -ltnp``) and the variable to
change, instead of the server's own "address already in use".
"""

from __future__ import annotations

import errno
import ipaddress
import os
import shutil
import socket
import subprocess
from pathlib import Path

from events.errors import ConfigError

__all__ = ["PortTaken", "check_api_port", "check_nats_port", "holders", "port_taken"]

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column


class PortTaken(ConfigError):
    """The port a fleet process must listen on is taken by another process."""


def port_taken(host: str, port: int) -> bool:
    """Whether listening on ``host:port`` fails with "address in use" right now."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # as servers do: a port with only TIME_WAIT connections left is free
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
            s.listen(1)
        except OSError as e:
            # EADDRNOTAVAIL and the like: not an address of this host; the server will say
            return e.errno == errno.EADDRINUSE
    return False


def holders(port: int, *, proc: Path = Path("/proc")) -> list[str]:
    """The processes listening on TCP ``port``, as ``pid N (command line)``; [] when unknown.

    Reads ``/proc/net/tcp{,6}`` and each process's open sockets; falls back
    to ``ss -ltnp`` (both see other users' processes only as root).
    """
    inodes = _listening_inodes(port, proc)
    found: list[str] = []
    if inodes:
        for pid_dir in proc.iterdir():
            if not pid_dir.name.isdigit():
                continue
            try:
                fds = list((pid_dir / "fd").iterdir())
            except OSError:
                continue
            for fd in fds:
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    found.append(f"pid {pid_dir.name} ({_cmdline(pid_dir)})")
                    break
    if not found:
        found = _from_ss(port)
    return found


def _listening_inodes(port: int, proc: Path) -> set[str]:
    inodes: set[str] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10 or parts[3] != _LISTEN:
                continue
            if int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    return inodes


def _cmdline(pid_dir: Path) -> str:
    try:
        raw = (pid_dir / "cmdline").read_bytes()
    except OSError:
        return "?"
    text = " ".join(" ".join(part.decode("utf-8", "replace").split()) for part in raw.split(b"\0") if part)
    return text if len(text) <= 120 else text[:117] + "..."


def _from_ss(port: int) -> list[str]:
    ss = shutil.which("ss")
    if ss is None:
        return []
    try:
        out = subprocess.run([ss, "-Hltnp", f"sport = :{port}"], check=False,
                             capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines():
        # users:(("nats-server",pid=123,fd=5))
        _, sep, users = line.partition("users:((")
        if sep:
            name, _, rest = users.partition(",pid=")
            pid, program = rest.split(",", 1)[0], name.strip('"')
            found.append(f"pid {pid} ({program})")
    return found


def _free_port_near(host: str, port: int) -> int | None:
    for candidate in range(port + 1, min(port + 50, 65536)):
        if not port_taken(host, candidate):
            return candidate
    return None


def _taken_message(host: str, port: int, what: str) -> str:
    held = holders(port)
    by = (f"by {', '.join(held)}" if held else
          "by a process this user cannot see (`sudo ss -ltnp` names it)")
    return f"port {port} on {host}, where {what} listens, is taken {by}"


def _url_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


def check_nats_port(host: str, port: int) -> None:
    """Raise :class:`PortTaken` when the embedded NATS's ``host:port`` is taken."""
    if not port_taken(host, port):
        return
    other = _free_port_near(host, port)
    example = f"nats://{_url_host(host)}:{other or 4333}"
    raise PortTaken(
        f"{_taken_message(host, port, 'the embedded NATS')} - stop that process, or run the embedded"
        f" server on another port: FLEET_NATS_URL={example} FLEET_EMBEDDED_NATS=true (both: FLEET_NATS_URL"
        f" alone means an external server); to use the server already there instead, set"
        f" FLEET_NATS_URL=nats://{_url_host(host)}:{port} (and its user, README: Security)")


def check_api_port(host: str, port: int) -> None:
    """Raise :class:`PortTaken` when the api's ``host:port`` is taken."""
    if not port_taken(host, port):
        return
    other = _free_port_near(host, port)
    raise PortTaken(f"{_taken_message(host, port, 'the api')} - stop that process, or set"
                    f" FLEET_API_PORT={other or 8081} (or `fleet api --port {other or 8081}`)")
