"""Cluster settings: a list of servers, replicas, and one member's name, port and routes."""

from __future__ import annotations

import json

import pytest

from events.errors import ConfigError
from ops.cli.nats import embedded_server
from ops.settings import load_settings
from ops.wiring import graph_stream, sdlc_stream
from workers.natsio.client import redact_url, server_urls, split_credentials

_MEMBER = {"FLEET_NATS_URL": "nats://127.0.0.1:4222,nats://10.0.0.2:4222",
           "FLEET_EMBEDDED_NATS": "true", "FLEET_NATS_SERVER_NAME": "nats-a",
           "FLEET_NATS_CLUSTER_PORT": "6222",
           "FLEET_NATS_CLUSTER_ROUTES": "nats-route://10.0.0.2:6222, nats-route://10.0.0.3:6222"}


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"FLEET_STREAM_REPLICAS": "0"}, "FLEET_STREAM_REPLICAS=0 must be positive"),
        ({"FLEET_STREAM_REPLICAS": "7"}, "FLEET_STREAM_REPLICAS=7 is more than 5"),
        ({"FLEET_STREAM_REPLICAS": "three"}, "FLEET_STREAM_REPLICAS='three' is not an integer"),
        ({"FLEET_NATS_URL": "nats://a:4222,,nats://b:4222"}, "has an empty server in its list"),
        ({"FLEET_NATS_URL": "nats://a:4222,http://b:80"}, "FLEET_NATS_URL='http://b:80' is not a NATS URL"),
        ({**_MEMBER, "FLEET_NATS_CLUSTER_ROUTES": ""}, ("FLEET_NATS_CLUSTER_PORT=6222 is set without"
                                                         " FLEET_NATS_CLUSTER_ROUTES")),
        ({"FLEET_NATS_CLUSTER_ROUTES": "nats-route://b:6222"}, ("FLEET_NATS_CLUSTER_ROUTES is set without"
                                                                " FLEET_NATS_CLUSTER_PORT")),
        ({**_MEMBER, "FLEET_NATS_SERVER_NAME": ""}, "is set without FLEET_NATS_SERVER_NAME"),
        ({**_MEMBER, "FLEET_NATS_SERVER_NAME": "nats a"},
         "FLEET_NATS_SERVER_NAME='nats a' is not a server name"),
        ({**_MEMBER, "FLEET_NATS_CLUSTER_NAME": "my.cluster"}, "FLEET_NATS_CLUSTER_NAME='my.cluster' is not"),
        ({**_MEMBER, "FLEET_NATS_CLUSTER_PORT": "70000"}, "FLEET_NATS_CLUSTER_PORT=70000 is not a TCP port"),
        ({**_MEMBER, "FLEET_NATS_CLUSTER_ROUTES": "http://b:6222"},
         "FLEET_NATS_CLUSTER_ROUTES='http://b:6222' is not a NATS URL"),
        ({**_MEMBER, "FLEET_NATS_CLUSTER_ROUTES": "nats-route://b:0"}, "has port 0"),
        ({"FLEET_LEASE_TTL_SECS": "0"}, "FLEET_LEASE_TTL_SECS=0 must be positive"),
        ({"FLEET_LEASE_TTL_SECS": "86400"}, "FLEET_LEASE_TTL_SECS=86_400 is more than 3_600"),
        ({"FLEET_LOG_STREAM": "SDLC"}, "FLEET_LOG_STREAM='SDLC' is the name of another"),
        ({"FLEET_LOG_STREAM": "LOG.x"}, "FLEET_LOG_STREAM='LOG.x' is not a JetStream name"),
        ({"FLEET_REPLICA_NAME": "replica b"}, "FLEET_REPLICA_NAME='replica b' is not a JetStream name"),
    ],
)
def test_bad_cluster_settings_are_refused_with_the_fix(env, says):
    """Each malformed cluster setting names the variable, the value and what to write."""
    with pytest.raises(ConfigError) as e:
        load_settings(env)
    assert says in str(e.value)


def test_a_server_list_carries_the_credentials_on_every_server():
    """FLEET_NATS_USER/PASSWORD go to every server of the list; messages show them masked."""
    s = load_settings({"FLEET_NATS_URL": "nats://a:4222, nats://b:4222", "FLEET_NATS_USER": "fleet",
                       "FLEET_NATS_PASSWORD": "p@ss"})
    assert server_urls(s.nats_url) == ["nats://fleet:p%40ss@a:4222", "nats://fleet:p%40ss@b:4222"]
    assert s.public_nats_url == "nats://fleet:***@a:4222,nats://fleet:***@b:4222"
    assert split_credentials(s.nats_url) == ("nats://a:4222,nats://b:4222", "fleet", "p@ss")
    assert "p%40ss" not in repr(s) and redact_url("nats://x:1") == "nats://x:1"


def test_replicas_shape_every_stream_the_fleet_creates():
    """FLEET_STREAM_REPLICAS reaches the SDLC and GRAPH streams (default 1)."""
    assert sdlc_stream(load_settings({})).replicas == 1
    s = load_settings({"FLEET_STREAM_REPLICAS": "3"})
    assert sdlc_stream(s).replicas == graph_stream(s).replicas == 3


def test_a_cluster_member_writes_its_cluster_block(tmp_path):
    """`fleet nats` as a member: server name, cluster name, listen address and routes in its config."""
    s = load_settings({**_MEMBER, "FLEET_DATA_DIR": str(tmp_path)})
    server = embedded_server(s)
    command = server.prepare()
    config = json.loads(server.config_path.read_text())
    assert config["server_name"] == "nats-a"
    assert config["cluster"] == {"name": "graphfleet", "listen": "127.0.0.1:6222",
                                 "routes": ["nats-route://10.0.0.2:6222", "nats-route://10.0.0.3:6222"]}
    assert command[command.index("-p") + 1] == "4222"  # the list's first server is this host's


def test_a_single_server_has_no_cluster_block(tmp_path):
    """Without FLEET_NATS_CLUSTER_PORT the server stands alone, as before."""
    server = embedded_server(load_settings({"FLEET_DATA_DIR": str(tmp_path)}))
    server.prepare()
    config = json.loads(server.config_path.read_text())
    assert "cluster" not in config and "server_name" not in config
