"""NATS credentials: carried in URLs, quoted, never shown; generated once, per role, privately."""

from __future__ import annotations

import json
import stat
from concurrent.futures import ThreadPoolExecutor

import pytest

from events.errors import ConfigError
from ops.natsauth import (ROLES, Credentials, Scope, authorization, ensure_credentials, permissions,
                          read_credentials)
from workers.natsio.client import redact_url, split_credentials, with_credentials


def test_credentials_round_trip_through_a_url_whatever_their_characters():
    """A password with '@', ':' or '/' survives being put in a URL and taken out again."""
    url = with_credentials("nats://10.0.0.1:4222", "ops team", "p@ss:w/rd%")
    assert split_credentials(url) == ("nats://10.0.0.1:4222", "ops team", "p@ss:w/rd%")
    assert split_credentials("nats://10.0.0.1:4222") == ("nats://10.0.0.1:4222", None, None)
    assert with_credentials(url, "a", "b") == "nats://a:b@10.0.0.1:4222"


def test_redacted_urls_keep_the_user_and_hide_the_password():
    """Messages and logs show who connects, never the password."""
    assert redact_url("nats://fleet:s3cret@127.0.0.1:4222") == "nats://fleet:***@127.0.0.1:4222"
    assert redact_url("nats://token@127.0.0.1:4222") == "nats://token@127.0.0.1:4222"
    assert redact_url("nats://127.0.0.1:4222") == "nats://127.0.0.1:4222"


def test_credentials_are_generated_once_with_mode_0600(tmp_path):
    """Processes starting at once all end up with the same passwords; the file is private."""
    path = tmp_path / "nats" / "auth.json"
    with ThreadPoolExecutor(8) as pool:
        found = list(pool.map(lambda _: ensure_credentials(path), range(16)))
    assert all(c == found[0] for c in found)
    assert set(found[0].passwords) == set(ROLES)
    assert len(set(found[0].passwords.values())) == 3
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_credentials(path) == found[0]
    assert list(path.parent.iterdir()) == [path]  # nothing left aside


def test_a_damaged_credentials_file_names_the_fix(tmp_path):
    """A file that is not ours is a configuration error saying what to do."""
    path = tmp_path / "auth.json"
    path.write_text(json.dumps({"users": {"fleet": {"password": "x"}}}))
    with pytest.raises(ConfigError, match="delete it and restart `fleet nats`"):
        read_credentials(path)
    assert read_credentials(tmp_path / "absent.json") is None


def test_permissions_follow_the_configured_names():
    """A producer publishes to the configured event prefix, a subscriber reads the configured
    graph stream; the fleet may do everything; an anonymous role must be a real one."""
    scope = Scope(subject_prefix="acme.sdlc", graph_stream="CHANGES", graph_subject_prefix="changes")
    assert permissions("producer", scope)["publish"] == {"allow": ["acme.sdlc.>"]}
    subscriber = permissions("subscriber", scope)
    assert "$JS.API.CONSUMER.MSG.NEXT.CHANGES.>" in subscriber["publish"]["allow"]
    assert not any("sdlc" in s for s in subscriber["publish"]["allow"])
    assert "changes.>" in subscriber["subscribe"]["allow"]
    assert permissions("fleet", scope)["publish"] == {"allow": [">"]}
    credentials = Credentials({role: f"pw-{role}" for role in ROLES})
    assert "no_auth_user" not in authorization(credentials, scope)
    assert authorization(credentials, scope, anonymous_role="fleet")["no_auth_user"] == "fleet"
    with pytest.raises(ValueError):
        authorization(credentials, scope, anonymous_role="root")

