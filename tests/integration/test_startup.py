"""Start-up survives NATS being away or restarting: every long-lived process waits with back-off,
comes up when NATS does, gives up with exit 3 after FLEET_STARTUP_TIMEOUT_SECS, and a SIGTERM
while it waits stops it at once with exit 0."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from nats.js.errors import NoKeysError

from ops.embedded import NatsServer, free_port, nats_server_binary
from tests.support.cli import fleet_cmd
from tests.support.wait import wait_until
from workers.natsio.client import connect
from workers.natsio.heartbeat import read_heartbeats

pytestmark = pytest.mark.slow

#: command line -> the heartbeat key the process writes once it is up
PROCESSES = {
    "ingest": (("ingest",), "ingest"),
    "worker": (("worker", "--threads", "1"), "worker"),
    "api": (("api",), "api"),
    "changes": (("changes", "publish"), "changes"),
}


class Fleet:
    """One `fleet` process on an embedded-NATS data directory, its stderr in a file."""

    def __init__(self, tmp_path: Path, port: int, args: tuple[str, ...], **env: str) -> None:
        self.stderr = tmp_path / f"{args[0]}.stderr"
        full = dict(os.environ, FLEET_DATA_DIR=str(tmp_path / "data"),
                    FLEET_NATS_URL=f"nats://127.0.0.1:{port}", FLEET_EMBEDDED_NATS="true",
                    FLEET_API_PORT=str(free_port()), FLEET_HEARTBEAT_INTERVAL_SECS="1")
        full.update(env)
        with open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(fleet_cmd(*args), env=full, cwd=tmp_path,
                                         stdout=subprocess.DEVNULL, stderr=err)

    def log(self) -> str:
        return self.stderr.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout_secs: float = 30) -> None:
        asyncio.run(wait_until(lambda: text in self.log() or self.proc.poll() is not None,
                               timeout_secs=timeout_secs, message=lambda: self.log()[-3000:]))
        assert self.proc.poll() is None, self.log()[-3000:]

    def stop(self, timeout_secs: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_secs)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def _heartbeat_of(url: str, process: str):
    async def read():
        try:
            nc = await connect(url, name="test-health", connect_timeout_secs=2)
        except Exception:
            return None
        try:
            beats = await read_heartbeats(nc.jetstream())
        except NoKeysError:  # the bucket is made at start-up, the first beat follows
            return None
        finally:
            await nc.close()
        beat = beats.get(process)
        return beat if beat and beat.state != "stopped" else None
    return read


@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_a_process_waits_for_a_restarted_nats_and_comes_up(tmp_path, name):
    """NATS stopped, the process started, NATS started again on the same port: it comes up."""
    args, key = PROCESSES[name]
    port = free_port()
    server = NatsServer(tmp_path / "data" / "nats", port=port).start()
    server.stop()
    fleet = Fleet(tmp_path, port, args)
    try:
        fleet.wait_for_log("waiting for NATS at nats://")
        server.start()
        asyncio.run(wait_until(_heartbeat_of(server.url, key), timeout_secs=60, interval_secs=0.3,
                               message=lambda: fleet.log()[-3000:]))
        assert fleet.stop() == 0, fleet.log()[-3000:]
    finally:
        fleet.stop()
        server.stop()
    assert "Traceback" not in fleet.log()


def test_credentials_written_by_a_server_that_starts_later_are_picked_up(tmp_path):
    """The Procfile starts ingest and nats at once: ingest finds the users the server creates."""
    port = free_port()
    fleet = Fleet(tmp_path, port, ("ingest",))
    server = NatsServer(tmp_path / "data" / "nats", port=port)
    try:
        fleet.wait_for_log("waiting for NATS")
        assert not (tmp_path / "data" / "nats" / "auth.json").exists()
        server.start()
        asyncio.run(wait_until(_heartbeat_of(server.url, "ingest"), timeout_secs=60, interval_secs=0.3,
                               message=lambda: fleet.log()[-3000:]))
        assert fleet.stop() == 0, fleet.log()[-3000:]
    finally:
        fleet.stop()
        server.stop()


def test_ingest_waits_for_jetstream_instead_of_crashing(tmp_path):
    """A server without JetStream (or one still recovering it) makes ingest wait, not die with
    `nats: timeout` in ensure_stream; restarted with JetStream on the same port, ingest comes up."""
    port = free_port()
    server = NatsServer(tmp_path / "nats", port=port, auth=False)
    bare = subprocess.Popen([str(nats_server_binary()), "-a", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        fleet = Fleet(tmp_path, port, ("ingest",), FLEET_NATS_URL=f"nats://127.0.0.1:{port}",
                      FLEET_EMBEDDED_NATS="false")
    except BaseException:
        bare.kill()
        bare.wait()
        raise
    try:
        fleet.wait_for_log("waiting for JetStream stream SDLC", timeout_secs=60)
        bare.terminate()
        bare.wait(10)
        server.start()
        asyncio.run(wait_until(_heartbeat_of(server.url, "ingest"), timeout_secs=60, interval_secs=0.3,
                               message=lambda: fleet.log()[-3000:]))
        assert fleet.stop() == 0, fleet.log()[-3000:]
    finally:
        bare.kill()
        bare.wait()
        fleet.stop()
        server.stop()
    assert "Traceback" not in fleet.log()


@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_sigterm_while_waiting_for_nats_exits_0_at_once(tmp_path, name):
    """No NATS: the process waits; SIGTERM stops it within a few seconds, exit 0."""
    args, _ = PROCESSES[name]
    fleet = Fleet(tmp_path, free_port(), args)
    try:
        fleet.wait_for_log("waiting for NATS")
        started = time.monotonic()
        code = fleet.stop(timeout_secs=15)
        took = time.monotonic() - started
    finally:
        fleet.stop()
    assert code == 0, fleet.log()[-3000:]
    assert took < 5, took
    assert "Traceback" not in fleet.log()


@pytest.mark.parametrize("name", sorted(PROCESSES))
def test_no_nats_within_the_startup_timeout_exits_3_naming_it(tmp_path, name):
    """FLEET_STARTUP_TIMEOUT_SECS=2 and no NATS: exit 3, naming the URL it waited for."""
    args, _ = PROCESSES[name]
    port = free_port()
    fleet = Fleet(tmp_path, port, args, FLEET_STARTUP_TIMEOUT_SECS="2")
    try:
        code = fleet.proc.wait(30)
    finally:
        fleet.stop()
    assert code == 3, fleet.log()[-3000:]
    assert "gave up after 2s waiting for NATS at nats://" in fleet.log()
    assert f"127.0.0.1:{port}" in fleet.log()
    assert "Traceback" not in fleet.log()
