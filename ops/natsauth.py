"""The embedded nats-server's users: credentials in one file, permissions per role.

Three users, named after their roles: ``fleet`` (the fleet's own processes:
it administers JetStream, so it may use every subject), ``producer`` (may
only publish canonical events) and ``subscriber`` (may only read the
graph-change stream). Their passwords are generated at the first start into
``DATA_DIR/nats/auth.json`` (mode 0600); the server's ``authorization`` block
is rendered from that file at every start.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from events.errors import ConfigError

__all__ = ["AUTH_FILE", "ROLES", "Credentials", "Scope", "authorization", "ensure_credentials",
           "permissions", "read_credentials"]

#: the credentials file, in the embedded server's store directory
AUTH_FILE = "auth.json"
ROLES = ("fleet", "producer", "subscriber")


@dataclass(frozen=True)
class Credentials:
    """Each role's password; the role is the user name."""

    passwords: Mapping[str, str]

    def user(self, role: str) -> tuple[str, str]:
        """``(user, password)`` of ``role``."""
        return role, self.passwords[role]


@dataclass(frozen=True, kw_only=True)
class Scope:
    """The names the producer and subscriber permissions are cut to."""

    subject_prefix: str = "sdlc"
    graph_stream: str = "GRAPH"
    graph_subject_prefix: str = "graph"


def read_credentials(path: Path) -> Credentials | None:
    """The credentials in ``path``, or None when the file does not exist yet."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"cannot read the NATS credentials {path}: {e.strerror} - the fleet's"
                          " processes must run as the user that started `fleet nats`") from e
    try:
        data = json.loads(raw)
        passwords = {role: data["users"][role]["password"] for role in ROLES}
    except (ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"{path} is not a graphfleet credentials file ({e!r}) - delete it and"
                          " restart `fleet nats`: it writes new credentials") from e
    if not all(isinstance(p, str) and p for p in passwords.values()):
        raise ConfigError(f"{path} has an empty password - delete it and restart `fleet nats`")
    return Credentials(passwords)


def ensure_credentials(path: Path) -> Credentials:
    """The credentials in ``path``, generated (mode 0600) when the file does not exist.

    Processes starting at once agree: the file is written aside and linked
    into place, so exactly one generation wins and everyone reads it.
    """
    found = read_credentials(path)
    if found is not None:
        return found
    path.parent.mkdir(parents=True, exist_ok=True)
    passwords = {role: secrets.token_hex(24) for role in ROLES}
    body = json.dumps({"users": {role: {"password": passwords[role]} for role in ROLES}}, indent=2)
    aside = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(body + "\n")
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(aside, path)
        except FileExistsError:
            pass  # another process won: use its credentials
    finally:
        aside.unlink(missing_ok=True)
    found = read_credentials(path)
    assert found is not None
    return found


def permissions(role: str, scope: Scope) -> dict[str, Any]:
    """nats-server permissions of ``role`` (subjects a user may publish and subscribe to)."""
    if role == "fleet":
        # It creates, updates and deletes streams, consumers and KV buckets through the
        # JetStream API, which is every subject's worth of power: listing subjects adds nothing.
        return {"publish": {"allow": [">"]}, "subscribe": {"allow": [">"]}}
    if role == "producer":
        return {"publish": {"allow": [f"{scope.subject_prefix}.>"]},
                "subscribe": {"allow": ["_INBOX.>"]}}  # JetStream's publish acks
    if role == "subscriber":
        stream = scope.graph_stream
        api = "$JS.API"
        return {
            "publish": {"allow": [
                f"{api}.INFO", f"{api}.STREAM.NAMES", f"{api}.STREAM.INFO.{stream}",
                f"{api}.STREAM.MSG.GET.{stream}",
                f"{api}.CONSUMER.CREATE.{stream}", f"{api}.CONSUMER.CREATE.{stream}.>",
                f"{api}.CONSUMER.DURABLE.CREATE.{stream}.>", f"{api}.CONSUMER.INFO.{stream}.>",
                f"{api}.CONSUMER.NAMES.{stream}", f"{api}.CONSUMER.LIST.{stream}",
                f"{api}.CONSUMER.DELETE.{stream}.>", f"{api}.CONSUMER.MSG.NEXT.{stream}.>",
                f"$JS.ACK.{stream}.>", f"$JS.FC.{stream}.>",
            ]},
            "subscribe": {"allow": ["_INBOX.>", f"{scope.graph_subject_prefix}.>"]},
        }
    raise ValueError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")


def authorization(credentials: Credentials, scope: Scope, *,
                  anonymous_role: str | None = None) -> dict[str, Any]:
    """The server configuration's ``authorization`` block (and ``no_auth_user``, when given).

    ``anonymous_role`` lets clients without credentials in as that role; the
    fleet never sets it (the test suite does, for tests speaking raw protocol).
    """
    users = [{"user": role, "password": credentials.passwords[role],
              "permissions": permissions(role, scope)} for role in ROLES]
    block: dict[str, Any] = {"authorization": {"users": users}}
    if anonymous_role is not None:
        if anonymous_role not in ROLES:
            raise ValueError(f"unknown role {anonymous_role!r}; roles are {', '.join(ROLES)}")
        block["no_auth_user"] = anonymous_role
    return block
