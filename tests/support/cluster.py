"""A JetStream cluster of real nats-servers on loopback, each with a store of its own (as if on
its own host), sharing one set of users as a deployment copies ``auth.json`` to every member."""

from __future__ import annotations

import shutil
from pathlib import Path

from ops.embedded import NatsServer, free_port
from ops.natsauth import AUTH_FILE
from workers.natsio.client import with_credentials


class Cluster:
    """``size`` members named ``n1``, ``n2``...; :attr:`url` lists them all with the fleet's user."""

    def __init__(self, root: Path, size: int = 3, *, name: str = "fleet-test") -> None:
        self.root = Path(root)
        ports = [(free_port(), free_port()) for _ in range(size)]
        self.servers: list[NatsServer] = []
        for i, (port, cluster_port) in enumerate(ports):
            routes = tuple(f"nats-route://127.0.0.1:{cp}" for j, (_, cp) in enumerate(ports) if j != i)
            store = self.root / f"n{i + 1}"
            server = NatsServer(store, port=port, log_file=self.root / f"n{i + 1}.log",
                                server_name=f"n{i + 1}", cluster_name=name, cluster_port=cluster_port,
                                routes=routes)
            self.servers.append(server)
        first = self.servers[0]
        first.store_dir.mkdir(parents=True, exist_ok=True)
        assert first.credentials is not None  # generated once, then copied to the others
        for server in self.servers[1:]:
            server.store_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(first.store_dir / AUTH_FILE, server.store_dir / AUTH_FILE)

    @property
    def url(self) -> str:
        """Every member, comma-separated, with the fleet's credentials (FLEET_NATS_URL)."""
        user, password = self.servers[0].credentials.user("fleet")
        return ",".join(with_credentials(s.address, user, password) for s in self.servers)

    def server(self, name: str) -> NatsServer:
        """The member named ``name``."""
        return next(s for s in self.servers if s.server_name == name)

    def start(self) -> "Cluster":
        for server in self.servers:
            server.start()
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
