"""The embedded nats-server requires a user, and each role may do only its part: the fleet
everything, a producer publish events, a subscriber read the graph-change stream."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess

import nats
import pytest
from nats.js.api import ConsumerConfig, DeliverPolicy, StreamConfig

from events.codec import encode_event
from events.errors import ConfigError
from ops.embedded import NatsServer
from ops.simulate import simulate
from tests.support.cli import fleet_cmd
from workers.natsio.client import connect, split_credentials

#: what the roles' permissions are cut to (the defaults: SDLC on sdlc.>, GRAPH on graph.>)
_SDLC, _GRAPH = "SDLC", "GRAPH"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server as `fleet nats` runs it: users on, no anonymous access, default names."""
    data = tmp_path_factory.mktemp("data")
    server = NatsServer(data / "nats", log_file=data / "nats.log").start()

    async def streams():
        nc = await connect(server.url, name="test-admin")
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name=_SDLC, subjects=["sdlc.>"]))
        await js.add_stream(StreamConfig(name=_GRAPH, subjects=["graph.>"]))
        await js.publish("graph.graph.node.upserted", b'{"kind": "node_upserted"}')
        await nc.drain()

    asyncio.run(streams())
    server.data_dir = data
    yield server
    server.stop()


async def _client(url: str):
    """A plain nats-py client (what a producer or downstream service uses) and its errors."""
    errors: list[Exception] = []

    async def on_error(e):
        errors.append(e)

    nc = await nats.connect(url, error_cb=on_error, allow_reconnect=False)
    return nc, errors


async def _refused(call, timeout: float = 2) -> bool:
    """Whether a request is refused: the server drops it, so no answer comes."""
    try:
        await asyncio.wait_for(call(), timeout)
    except (nats.errors.Error, asyncio.TimeoutError):
        return True
    return False


async def _messages(server, stream: str) -> int:
    nc = await connect(server.url, name="test-count")
    try:
        return (await nc.jetstream().stream_info(stream)).state.messages
    finally:
        await nc.close()


def test_a_client_without_credentials_or_with_a_wrong_password_is_refused(server):
    """No user, or the fleet's user with another password: refused at connect, clearly."""
    with pytest.raises(ConfigError, match="refused a client without credentials"):
        asyncio.run(connect(server.address, name="anonymous"))
    wrong = server.address.replace("nats://", "nats://fleet:not-the-password@")
    with pytest.raises(ConfigError, match="refused user 'fleet'"):
        asyncio.run(connect(wrong, name="guesser"))


def test_a_producer_publishes_events_and_nothing_else(server):
    """The producer's events land in SDLC; reading, consuming and administering are refused."""
    async def main():
        before = await _messages(server, _SDLC)
        nc, errors = await _client(server.url_for("producer"))
        js = nc.jetstream()
        ack = await js.publish("sdlc.simulate.issue.opened", encode_event(next(iter(simulate(1, seed=3)))))
        assert ack.stream == _SDLC
        assert await _refused(lambda: js.stream_info(_SDLC))
        assert await _refused(lambda: js.delete_stream(_SDLC))
        assert await _refused(lambda: js.add_consumer(_SDLC, ConsumerConfig(durable_name="steal")))
        assert await _refused(lambda: js.pull_subscribe("sdlc.>", "steal", stream=_SDLC))
        assert await _refused(lambda: js.publish("graph.graph.node.deleted", b"{}"))
        await nc.subscribe("sdlc.>")
        await nc.subscribe("_INBOX_fleet.>")  # the fleet's replies and deliveries
        await nc.flush()
        await asyncio.sleep(0.3)
        await nc.close()
        assert await _messages(server, _SDLC) == before + 1
        violations = " ".join(str(e) for e in errors)
        for what in ('subscription to "sdlc.>"', 'subscription to "_inbox_fleet.>"',
                     '"$js.api.stream.delete.sdlc"'):
            assert what in violations.lower(), violations

    asyncio.run(main())


def test_a_subscriber_reads_the_graph_stream_and_cannot_publish_events(server):
    """A downstream service creates its consumer on GRAPH and fetches; it cannot publish to
    sdlc.>, read SDLC or delete streams."""
    async def main():
        before = await _messages(server, _SDLC)
        nc, errors = await _client(server.url_for("subscriber"))
        js = nc.jetstream()
        # what examples/downstream_copy.py does
        await js.add_consumer(_GRAPH, ConsumerConfig(durable_name="copy", deliver_policy=DeliverPolicy.ALL))
        sub = await js.pull_subscribe("graph.graph.>", durable="copy", stream=_GRAPH)
        (msg,) = await sub.fetch(1, timeout=5)
        assert json.loads(msg.data)["kind"] == "node_upserted"
        await msg.ack()
        ordered = await js.subscribe("graph.>", ordered_consumer=True)
        assert (await ordered.next_msg(timeout=5)).data == msg.data
        await js.delete_consumer(_GRAPH, "copy")
        await nc.publish("sdlc.simulate.issue.opened", b"{}")
        assert await _refused(lambda: js.publish("sdlc.simulate.issue.opened", b"{}"))
        assert await _refused(lambda: js.stream_info(_SDLC))
        assert await _refused(lambda: js.pull_subscribe("sdlc.>", "steal", stream=_SDLC))
        assert await _refused(lambda: js.delete_stream(_GRAPH))
        await nc.flush()
        await asyncio.sleep(0.3)
        await nc.close()
        assert await _messages(server, _SDLC) == before
        assert 'publish to "sdlc.simulate.issue.opened"' in " ".join(str(e) for e in errors).lower()

    asyncio.run(main())


def test_the_credentials_file_is_private_and_survives_a_restart(server, tmp_path):
    """auth.json and the server configuration are 0600; a restart keeps the same users."""
    store = server.store_dir
    for name in ("auth.json", "nats-server.conf"):
        assert stat.S_IMODE((store / name).stat().st_mode) == 0o600, name
    again = NatsServer(store, port=server.port)
    assert again.url_for("producer") == server.url_for("producer")
    other = NatsServer(tmp_path / "other")
    assert other.url_for("producer") != server.url_for("producer")
    assert "-a" in other.command() and other.command()[other.command().index("-a") + 1] == "127.0.0.1"


def _fleet(server, *args: str, stdin: bytes | None = None, **env: str) -> subprocess.CompletedProcess:
    full = dict(os.environ, FLEET_DATA_DIR=str(server.data_dir), FLEET_NATS_URL=server.address,
                FLEET_EMBEDDED_NATS="true")
    full.update(env)
    return subprocess.run(fleet_cmd(*args), env=full, input=stdin, capture_output=True, timeout=60)


def test_fleet_commands_use_the_embedded_servers_credentials_by_themselves(server):
    """With the embedded server, `fleet publish` and `fleet health` find their credentials."""
    events = b"".join(encode_event(e) + b"\n" for e in simulate(3, seed=5))
    result = _fleet(server, "publish", "-", stdin=events)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert b"published=3" in result.stdout
    health = _fleet(server, "health", "--json")
    report = json.loads(health.stdout)
    nats_line = next(c for c in report["components"] if c["name"] == "nats")
    assert nats_line["state"] == "ok", nats_line
    assert server.credentials.passwords["fleet"] not in health.stdout.decode()


def test_an_external_nats_takes_user_and_password_from_the_environment(server):
    """FLEET_NATS_USER/FLEET_NATS_PASSWORD, or user:password in the URL; without them: exit 2."""
    user, password = server.credentials.user("fleet")
    events = encode_event(next(iter(simulate(1, seed=9)))) + b"\n"
    external = {"FLEET_EMBEDDED_NATS": "false", "FLEET_DATA_DIR": str(server.data_dir / "elsewhere")}
    by_env = _fleet(server, "publish", "-", stdin=events, FLEET_NATS_USER=user,
                    FLEET_NATS_PASSWORD=password, **external)
    assert by_env.returncode == 0, by_env.stderr.decode()[-2000:]
    by_url = _fleet(server, "publish", "-", stdin=events, **{**external, "FLEET_NATS_URL": server.url})
    assert by_url.returncode == 0, by_url.stderr.decode()[-2000:]
    without = _fleet(server, "publish", "-", stdin=events, **external)
    assert without.returncode == 2, without.stderr.decode()[-2000:]
    assert b"refused a client without credentials" in without.stderr
    assert b"Traceback" not in without.stderr


def test_fleet_nats_credentials_prints_the_producer_and_subscriber_urls(server):
    """Operators get working producer and subscriber URLs, and not the fleet's own password."""
    result = _fleet(server, "nats", "credentials", "--json")
    assert result.returncode == 0, result.stderr.decode()
    found = json.loads(result.stdout)
    assert set(found) == {"producer", "subscriber"}
    assert found["producer"]["url"] == server.url_for("producer")
    assert split_credentials(found["subscriber"]["url"])[1:] == server.credentials.user("subscriber")
    assert server.credentials.passwords["fleet"] not in result.stdout.decode()
    external = _fleet(server, "nats", "credentials", FLEET_EMBEDDED_NATS="false")
    assert external.returncode == 2 and b"external NATS" in external.stderr
