"""Configuration: defaults that work, and clear errors for malformed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from events.errors import ConfigError
from ops.settings import load_settings


def test_defaults_use_the_embedded_server_and_local_data():
    """With no environment the fleet runs on ./data and an embedded nats-server."""
    s = load_settings({})
    assert s.data_dir == Path("data") and s.embedded_nats and s.nats_url.startswith("nats://")
    assert s.log_path == Path("data/log.db")


def test_an_external_nats_url_turns_the_embedded_server_off():
    """Setting FLEET_NATS_URL means an external server unless FLEET_EMBEDDED_NATS says otherwise."""
    assert not load_settings({"FLEET_NATS_URL": "nats://10.0.0.1:4222"}).embedded_nats
    assert load_settings({"FLEET_NATS_URL": "nats://127.0.0.1:4333", "FLEET_EMBEDDED_NATS": "yes"}).embedded_nats


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"FLEET_INGEST_BATCH_MAX": "lots"}, "FLEET_INGEST_BATCH_MAX='lots' is not an integer"),
        ({"FLEET_INGEST_BATCH_MAX": "0"}, "must be positive"),
        ({"FLEET_MAX_EVENT_BYTES": "-5"}, "must be positive"),
        ({"FLEET_INGEST_INFLIGHT_BYTES": "0"}, "FLEET_INGEST_INFLIGHT_BYTES=0 must be positive"),
        ({"FLEET_INGEST_INFLIGHT_BYTES": "32MB"}, "FLEET_INGEST_INFLIGHT_BYTES='32MB' is not an integer"),
        ({"FLEET_EMBEDDED_NATS": "maybe"}, "not a boolean"),
        ({"FLEET_NATS_URL": "http://localhost"}, "not a NATS URL"),
        ({"FLEET_LOG_SYNC": "sometimes"}, "'full' or 'normal'"),
        ({"FLEET_INGEST_WRITER": "gpu"}, "'process' or 'thread'"),
        ({"FLEET_API_PORT": "70000"}, "not a TCP port"),
        ({"FLEET_PROJECTION_SYNC_MS": "-1"}, "must be 0 (fsync every commit) or a positive"),
        ({"FLEET_PROJECTION_SYNC_MS": "1.5s"}, "FLEET_PROJECTION_SYNC_MS='1.5s' is not an integer"),
        ({"FLEET_INGEST_BATCH_MAX": "20000000"}, "FLEET_INGEST_BATCH_MAX=20_000_000 is more than 1_000_000"),
        ({"FLEET_MAX_EVENT_BYTES": "100000000"}, "NATS carries at most 64 MiB per message"),
        ({"FLEET_PROJECTOR_BATCH_MAX": "1_000_001"}, "held in memory until it commits"),
        ({"FLEET_HEARTBEAT_INTERVAL_SECS": "10"}, "FLEET_HEARTBEAT_STALE_SECS=6 must be more than"
                                                  " FLEET_HEARTBEAT_INTERVAL_SECS=10"),
    ],
)
def test_malformed_values_name_the_variable_and_the_fix(env, says):
    """Each malformed setting raises ConfigError naming the variable."""
    with pytest.raises(ConfigError, match=says.replace("(", r"\(").replace(")", r"\)")):
        load_settings(env)


def test_underscores_in_numbers_are_accepted():
    """Large numbers may be written with underscores, as in Python."""
    assert load_settings({"FLEET_INGEST_BATCH_MAX": "50_000"}).ingest_batch_max == 50_000
