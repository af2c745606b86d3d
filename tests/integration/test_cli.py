"""The fleet CLI's input paths: files of events, arguments, unreachable services."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid

from events.codec import encode_event
from ops.wiring import open_log
from tests.support.cli import fleet_cmd, settings_env
from tests.support.ingest import ingest_until_idle
from tests.support.issues import make_issue


def run(settings, *args, stdin: bytes | None = None, **env):
    return subprocess.run(fleet_cmd(*args), env=settings_env(settings, **env), input=stdin,
                          capture_output=True, timeout=60)


def test_publish_validates_each_line_and_names_the_bad_ones(settings, tmp_path):
    """Valid lines are published; invalid ones are reported with line numbers; exit 1."""
    good = [encode_event(make_issue(i, event_id=str(uuid.uuid4()))) for i in range(3)]
    lines = [good[0], b"{broken", b"", good[1], b'{"type": "issue.opened"}', good[2], good[0]]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    result = run(settings, "publish", str(path), "--json")
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert summary["published"] == 3 and summary["duplicates"] == 1 and summary["invalid"] == 2
    assert b"line 2: not_json" in result.stderr and b"line 5: no_event_id" in result.stderr
    asyncio.run(ingest_until_idle(settings))
    with open_log(settings, readonly=True) as log:
        assert log.stats()["count"] == 3 and log.quarantine_count() == 0


def test_publish_raw_sends_invalid_lines_to_the_quarantine(settings):
    """With --raw an invalid line is published and ends in the quarantine, from stdin."""
    good = encode_event(make_issue(1, event_id=str(uuid.uuid4())))
    result = run(settings, "publish", "-", "--raw", stdin=good + b"\nnot json\n")
    assert result.returncode == 1
    asyncio.run(ingest_until_idle(settings))
    with open_log(settings, readonly=True) as log:
        assert log.stats()["count"] == 1
        (item,) = log.quarantine_list()
        assert item["reason"] == "not_json"


def test_log_commands_read_what_ingest_wrote(settings):
    """stats, tail, show and verify report the log; show by id and by position agree."""
    event = make_issue(1, event_id=str(uuid.uuid4()))
    run(settings, "publish", "-", stdin=encode_event(event))
    asyncio.run(ingest_until_idle(settings))
    stats = json.loads(run(settings, "log", "stats", "--json").stdout)
    assert stats["count"] == 1 and stats["by_type"] == {"issue.opened": 1}
    by_id = json.loads(run(settings, "log", "show", event.event_id).stdout)
    by_pos = json.loads(run(settings, "log", "show", "1").stdout)
    assert by_id == by_pos and by_id["event"]["issue_id"] == event.issue_id
    tail = run(settings, "log", "tail", "--json")
    assert json.loads(tail.stdout.splitlines()[0])["event_id"] == event.event_id
    verify = run(settings, "verify", "--json")
    assert verify.returncode == 0 and json.loads(verify.stdout)["ok"]


def test_bad_arguments_are_usage_errors(settings, tmp_path):
    """Missing files, bad numbers and unknown ids give clear messages and exit codes."""
    missing = run(settings, "publish", str(tmp_path / "nope.jsonl"))
    assert missing.returncode == 2 and b"nope.jsonl" in missing.stderr
    zero = run(settings, "simulate", "--events", "0")
    assert zero.returncode == 2 and b"--events" in zero.stderr
    nolog = run(settings, "log", "show", "5")
    assert nolog.returncode == 1 and b"fleet ingest" in nolog.stderr
    retry = run(settings, "quarantine", "retry")
    assert retry.returncode == 2 and b"--all" in retry.stderr


def test_an_unreachable_nats_exits_3_and_says_what_to_start(settings):
    """Publishing with no server listening names the URL and `fleet nats`."""
    result = run(settings, "simulate", "--events", "5", FLEET_NATS_URL="nats://127.0.0.1:1")
    assert result.returncode == 3
    assert b"nats://127.0.0.1:1" in result.stderr and b"fleet nats" in result.stderr


def test_schema_events_is_valid_json_schema():
    """`fleet schema events` prints a JSON document with a definition per event type."""
    result = subprocess.run(fleet_cmd("schema", "events"), capture_output=True, check=True)
    schema = json.loads(result.stdout)
    assert "IssueOpened" in schema["$defs"]
