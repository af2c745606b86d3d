"""Bad configuration is refused with a message naming the variable, the bad value and the fix."""

from __future__ import annotations

import pytest

from events.errors import ConfigError
from ops.settings import load_settings


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"FLEET_INGEST_DURABLE": "a.b"}, "FLEET_INGEST_DURABLE='a.b' is not a JetStream name"),
        ({"FLEET_STREAM": "SD.LC"}, "FLEET_STREAM='SD.LC' is not a JetStream name"),
        ({"FLEET_GRAPH_STREAM": "G*"}, "FLEET_GRAPH_STREAM='G*' is not a JetStream name"),
        ({"FLEET_STREAM": "GRAPH"}, "FLEET_STREAM='GRAPH' is FLEET_GRAPH_STREAM too"),
        ({"FLEET_SUBJECT_PREFIX": "a b"}, "FLEET_SUBJECT_PREFIX='a b' is not a subject prefix"),
        ({"FLEET_SUBJECT_PREFIX": "sdlc.>"}, "FLEET_SUBJECT_PREFIX='sdlc.>' is not a subject prefix"),
        ({"FLEET_SUBJECT_PREFIX": "graph.x"}, "overlap"),
        ({"FLEET_GRAPH_SUBJECT_PREFIX": "fleet"}, "reserved"),
        ({"FLEET_STREAM_MAX_AGE_SECS": "-5"}, "FLEET_STREAM_MAX_AGE_SECS=-5 must be 0 (keep forever) or"),
        ({"FLEET_CHANGES_MAX_AGE_SECS": "-1"}, "FLEET_CHANGES_MAX_AGE_SECS=-1 must be 0"),
        ({"FLEET_STREAM_MAX_BYTES": "0"}, "FLEET_STREAM_MAX_BYTES=0 must be -1 (unlimited) or"),
        ({"FLEET_DEDUP_WINDOW_SECS": "1000000000000"}, "FLEET_DEDUP_WINDOW_SECS=1_000_000_000_000 is more than"),
        ({"FLEET_DEDUP_WINDOW_SECS": "600", "FLEET_STREAM_MAX_AGE_SECS": "60"},
         "FLEET_DEDUP_WINDOW_SECS=600 is longer than FLEET_STREAM_MAX_AGE_SECS=60"),
        ({"FLEET_INGEST_ACK_WAIT_SECS": "99999999999999"}, "FLEET_INGEST_ACK_WAIT_SECS=99_999_999_999_999 is more than"),
        ({"FLEET_NATS_URL": "nats://127.0.0.1:99999"}, "FLEET_NATS_URL='nats://127.0.0.1:99999' has port 99999"),
        ({"FLEET_NATS_URL": "nats://:4222"}, "FLEET_NATS_URL='nats://:4222' names no host"),
        ({"FLEET_BROKER_URL": "nats://127.0.0.1:123456"}, "FLEET_BROKER_URL='nats://127.0.0.1:123456' has port"),
        ({"FLEET_DATA_DIR": "/dev/null"}, "FLEET_DATA_DIR='/dev/null' is not a directory"),
        ({"FLEET_DATA_DIR": "/dev/null/data"}, "FLEET_DATA_DIR='/dev/null/data' is not a directory"),
        ({"FLEET_WORKER_THREADS": "١٢"}, "FLEET_WORKER_THREADS='١٢' is not an integer"),
        ({"FLEET_INGEST_BATCH_MAX": "²"}, "FLEET_INGEST_BATCH_MAX='²' is not an integer"),
        ({"FLEET_WORKER_THREADS": "65"}, "FLEET_WORKER_THREADS=65 is more than 64"),
        ({"FLEET_MAX_BODY_BYTES": "-1"}, "FLEET_MAX_BODY_BYTES=-1 must be positive"),
        ({"FLEET_READY_MAX_LAG": "-1"}, "FLEET_READY_MAX_LAG=-1 must be 0 or more"),
        ({"FLEET_STARTUP_TIMEOUT_SECS": "0"}, "FLEET_STARTUP_TIMEOUT_SECS=0 must be positive"),
        ({"FLEET_PROJECTOR_POLL_MS": "100000000000"}, "FLEET_PROJECTOR_POLL_MS=100_000_000_000 is more than"),
        ({"FLEET_NATS_USER": "ops"}, "FLEET_NATS_USER is set without FLEET_NATS_PASSWORD"),
        ({"FLEET_NATS_URL": "nats://a:b@10.0.0.1:4222", "FLEET_NATS_USER": "c", "FLEET_NATS_PASSWORD": "d"},
         "FLEET_NATS_URL carries a user already"),
        ({"FLEET_NATS_USER": "c", "FLEET_NATS_PASSWORD": "d"}, "for an external NATS"),
    ],
)
def test_bad_values_are_refused_with_the_variable_and_the_fix(env, says, tmp_path):
    """Each bad value raises ConfigError whose message names the variable and the bad value."""
    env = {"FLEET_DATA_DIR": str(tmp_path / "data"), **env}
    with pytest.raises(ConfigError) as raised:
        load_settings(env)
    assert says in str(raised.value), str(raised.value)


def test_non_ascii_digits_are_not_read_as_numbers():
    """`١٢` (Arabic-Indic digits) is 12 to Python's int(), and a typo to an operator."""
    with pytest.raises(ConfigError, match="not an integer"):
        load_settings({"FLEET_WORKER_THREADS": "١٢"})
    assert load_settings({"FLEET_WORKER_THREADS": " 12 "}).worker_threads == 12


def test_the_failpoint_is_ignored_outside_the_test_suite():
    """FLEET_FAILPOINT kills processes on purpose: only honoured with FLEET_TESTING=1."""
    assert load_settings({"FLEET_FAILPOINT": "after_commit"}).failpoint is None
    assert load_settings({"FLEET_FAILPOINT": "after_commit", "FLEET_TESTING": "0"}).failpoint is None
    assert load_settings({"FLEET_FAILPOINT": "after_commit", "FLEET_TESTING": "1"}).failpoint == "after_commit"


def test_user_and_password_go_into_the_nats_url_quoted():
    """FLEET_NATS_USER/FLEET_NATS_PASSWORD reach every NATS client through the settings' URL."""
    s = load_settings({"FLEET_NATS_URL": "nats://10.0.0.1:4222", "FLEET_NATS_USER": "fleet",
                       "FLEET_NATS_PASSWORD": "p@ss:w/rd"})
    assert s.nats_url == "nats://fleet:p%40ss%3Aw%2Frd@10.0.0.1:4222"
    assert "p@ss" not in repr(s) and "p%40ss" not in repr(s)


def test_secrets_stay_out_of_the_settings_repr():
    """A logged Settings shows neither passwords nor webhook secrets."""
    s = load_settings({"FLEET_NATS_URL": "nats://u:hunter2@10.0.0.1:4222", "FLEET_GITHUB_SECRET": "s3cret"})
    assert "hunter2" not in repr(s) and "s3cret" not in repr(s)
    assert "nats://u:***@10.0.0.1:4222" in repr(s)
