"""Events too large for the log reach ingest and are quarantined as `oversized`; input too large
for NATS itself is refused by `fleet publish` with a message, not a MaxPayloadError traceback."""

from __future__ import annotations

import asyncio
import json
import subprocess

from ops.embedded import DEFAULT_MAX_PAYLOAD_BYTES, max_payload_for
from ops.wiring import open_log
from tests.support.cli import fleet_cmd, settings_env
from tests.support.ingest import ingest_until_idle


def _publish(settings, lines: list[bytes], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(fleet_cmd("publish", "-", *args), input=b"\n".join(lines) + b"\n",
                          env=settings_env(settings), capture_output=True, timeout=120)


def _oversized_event(size: int) -> bytes:
    body = {"type": "issue.opened", "event_id": "big-1", "source": "simulate",
            "occurred_at": "2026-01-01T00:00:00Z", "issue_id": 1, "project_id": 1, "iid": 1,
            "title": "big", "author_id": 1, "description": "x" * size}
    return json.dumps(body).encode()


def test_an_event_over_the_event_limit_is_quarantined_as_oversized(settings):
    """A 2 MB event (limit 1 MiB) gets through NATS and lands in the quarantine, reason oversized."""
    result = _publish(settings, [_oversized_event(2_000_000)], "--raw")
    assert result.returncode == 1, result.stderr.decode()[-2000:]  # reported invalid, published raw
    assert b"oversized" in result.stderr and b"Traceback" not in result.stderr
    stats = asyncio.run(ingest_until_idle(settings))
    assert (stats.appended, stats.quarantined) == (0, 1)
    with open_log(settings, readonly=True) as log:
        (item,) = log.quarantine_list()
    assert item["reason"] == "oversized"


def test_a_line_over_the_servers_max_payload_is_refused_with_a_message(settings):
    """`fleet publish --raw` of a line NATS cannot carry names the line, its size and the
    server's limit, and still publishes the other lines."""
    small = b'{"not": "an event"}'
    huge = b'{"pad": "' + b"a" * (DEFAULT_MAX_PAYLOAD_BYTES + 1024) + b'"}'
    result = _publish(settings, [small, huge], "--raw", "--json")
    err = result.stderr.decode()
    assert result.returncode == 1, err[-2000:]
    assert "Traceback" not in err and "MaxPayloadError" not in err, err[-2000:]
    summary = json.loads(result.stdout)
    assert summary["published"] == 1
    (refused,) = summary["errors"]
    assert refused.startswith("line 2: ") and f"max_payload {DEFAULT_MAX_PAYLOAD_BYTES:_} bytes" in refused


def test_the_embedded_servers_max_payload_stays_above_the_event_limit():
    """8 MiB by default, twice FLEET_MAX_EVENT_BYTES when that is more, at most NATS's 64 MiB."""
    assert max_payload_for(1 << 20) == DEFAULT_MAX_PAYLOAD_BYTES == 8 << 20
    assert max_payload_for(10 << 20) == 20 << 20
    assert max_payload_for(64 << 20) == 64 << 20
