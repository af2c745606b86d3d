"""A taken port stops `fleet nats`, `fleet api` and `fleet up` at once, naming the port, its holder and the fix."""

from __future__ import annotations

import os
import socket

import pytest

from ops.embedded import free_port
from ops.ports import PortTaken, check_api_port, check_nats_port, holders, port_taken
from ops.supervise import read_state
from tests.support.cli import fleet


@pytest.fixture
def taken():
    """A port this test process listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield s.getsockname()[1]


def test_a_listening_port_is_taken_and_a_closed_one_free(taken):
    """The probe sees a listener, and not a port nobody listens on."""
    assert port_taken("127.0.0.1", taken)
    assert not port_taken("127.0.0.1", free_port())


def test_the_holder_is_found_by_its_pid(taken):
    """The process listening on the port is named with its pid and command line."""
    found = holders(taken)
    assert any(f"pid {os.getpid()} " in h and "python" in h for h in found), found


def test_the_nats_message_names_port_holder_and_variables(taken):
    """The embedded NATS's message says the port, who holds it, and which variables to set."""
    with pytest.raises(PortTaken) as e:
        check_nats_port("127.0.0.1", taken)
    message = str(e.value)
    assert f"port {taken} on 127.0.0.1" in message
    assert f"pid {os.getpid()}" in message
    assert "FLEET_NATS_URL=nats://127.0.0.1:" in message and "FLEET_EMBEDDED_NATS=true" in message


def test_the_api_message_names_port_holder_and_variable(taken):
    """The api's message says the port, who holds it, and FLEET_API_PORT."""
    with pytest.raises(PortTaken, match=rf"port {taken} on 127.0.0.1, where the api listens, is taken by"
                                        rf" pid {os.getpid()} .*FLEET_API_PORT=\d+"):
        check_api_port("127.0.0.1", taken)


def test_free_ports_pass(taken):
    """Nothing is raised for a port nobody listens on."""
    check_nats_port("127.0.0.1", free_port())
    check_api_port("127.0.0.1", free_port())


def test_fleet_nats_exits_2_when_its_port_is_taken(monkeypatch, capsys, tmp_path, taken):
    """`fleet nats` with FLEET_NATS_URL's port taken stops before starting the server."""
    monkeypatch.setenv("FLEET_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FLEET_NATS_URL", f"nats://127.0.0.1:{taken}")
    monkeypatch.setenv("FLEET_EMBEDDED_NATS", "true")
    code, _, err = fleet(monkeypatch, capsys, "nats")
    assert code == 2
    assert f"port {taken} on 127.0.0.1, where the embedded NATS listens, is taken by pid {os.getpid()}" in err
    assert "FLEET_EMBEDDED_NATS=true" in err


def test_fleet_api_exits_2_when_its_port_is_taken(monkeypatch, capsys, tmp_path, taken):
    """`fleet api` with FLEET_API_PORT taken stops before waiting for NATS."""
    monkeypatch.setenv("FLEET_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FLEET_API_PORT", str(taken))
    code, _, err = fleet(monkeypatch, capsys, "api")
    assert code == 2
    assert f"port {taken} on 127.0.0.1, where the api listens, is taken by pid {os.getpid()}" in err
    code, _, err = fleet(monkeypatch, capsys, "api", "--port", str(taken))
    assert code == 2 and "FLEET_API_PORT=" in err


def test_fleet_up_checks_the_ports_before_starting_anything(monkeypatch, capsys, tmp_path, taken):
    """`fleet up` names the taken NATS port (or the api's) and starts no process."""
    monkeypatch.setenv("FLEET_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FLEET_NATS_URL", f"nats://127.0.0.1:{taken}")
    monkeypatch.setenv("FLEET_EMBEDDED_NATS", "true")
    code, _, err = fleet(monkeypatch, capsys, "up")
    assert code == 2 and f"port {taken} on 127.0.0.1, where the embedded NATS listens" in err
    monkeypatch.setenv("FLEET_NATS_URL", f"nats://127.0.0.1:{free_port()}")
    monkeypatch.setenv("FLEET_API_PORT", str(taken))
    code, _, err = fleet(monkeypatch, capsys, "up", "--only", "nats,api")
    assert code == 2 and f"port {taken} on 127.0.0.1, where the api listens" in err
    state = read_state(tmp_path)
    assert not state["supervisor"]["running"] and {p["starts"] for p in state["processes"].values()} == {0}

