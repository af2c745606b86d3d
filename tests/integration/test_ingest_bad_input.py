"""Bad input on the JetStream path, against a real nats-server: every message is logged,
quarantined with a documented reason, or dropped as a duplicate, and the stream moves on."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import uuid

from ops.simulate import simulate
from ops.wiring import open_log, sdlc_stream
from events.codec import encode_event
from tests.support.ingest import ingest_until_idle, publish_raw
from workers.natsio.client import connect
from workers.natsio.streams import ensure_stream

#: the quarantine reasons README documents
REASONS = {"not_json", "schema", "unknown_type", "oversized", "no_event_id", "too_deep",
           "bad_subject", "internal"}


def _raw_publish(url_host: str, port: int, frames: list[bytes]) -> None:
    """Speak the NATS protocol by hand: what a client library would refuse to send."""
    with socket.create_connection((url_host, port), timeout=5) as sock:
        sock.recv(4096)  # INFO
        sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n' + b"".join(frames) + b"PING\r\n")
        reply = b""
        while b"PONG" not in reply and b"-ERR" not in reply:
            reply += sock.recv(4096)
        assert b"-ERR" not in reply, reply


def test_a_subject_that_is_not_utf8_is_quarantined_and_the_stream_moves_on(settings, nats_server):
    """`PUB sdlc.\\xff.x` used to stall ingest, then vanish; now it is quarantined, escaped."""
    async def make_stream():
        nc = await connect(settings.nats_url, name="test")
        await ensure_stream(nc.jetstream(), sdlc_stream(settings))
        await nc.drain()

    asyncio.run(make_stream())
    subject = settings.subject_prefix.encode() + b".\xff.x"
    _raw_publish(nats_server.host, nats_server.port,
                 [b"PUB " + subject + b" 2\r\n{}\r\n"])
    events = list(simulate(10, seed=31))
    asyncio.run(publish_raw(settings, [encode_event(e) for e in events]))
    stats = asyncio.run(ingest_until_idle(settings))
    assert (stats.appended, stats.quarantined) == (10, 1)
    with open_log(settings, readonly=True) as log:
        (item,) = log.quarantine_list()
    assert item["reason"] == "bad_subject"
    assert item["subject"] == settings.subject_prefix + ".\\xff.x"


def _fuzz_inputs(rng: random.Random, valid: list[bytes]) -> list[tuple[bytes, str | None]]:
    """Bodies with the message ids they are published under: malformed, oversized, deep,
    truncated, duplicated (same id, and same body under another id) and out of order."""
    out: list[tuple[bytes, str | None]] = []
    for body in valid:
        roll = rng.random()
        if roll < 0.45:
            out.append((body, json.loads(body)["event_id"]))
        elif roll < 0.55:
            out.append((body[: rng.randrange(1, len(body))], None))  # truncated
        elif roll < 0.62:
            data = json.loads(body)
            data.pop(rng.choice(sorted(data)))
            out.append((json.dumps(data).encode(), None))  # a field missing
        elif roll < 0.68:
            data = json.loads(body)
            key = rng.choice(sorted(data))
            data[key] = rng.choice([None, -1, 2**70, "x" * 3, [], {}, "9999-12-31T23:59:59-23:59"])
            out.append((json.dumps(data).encode(), None))  # a field of the wrong kind
        elif roll < 0.72:
            out.append((b"[" * 5_000 + b"]" * 5_000, None))
        elif roll < 0.75:
            out.append((bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64))), None))
        elif roll < 0.78:
            out.append((b'{"type":"issue.opened","event_id":"x","pad":"' + b"a" * 1_100_000 + b'"}', None))
        elif roll < 0.85:
            out.append((body, None))  # no Nats-Msg-Id: only the log's unique index drops a repeat
        else:
            out.append((body, json.loads(body)["event_id"]))
            out.append((body, json.loads(body)["event_id"]))  # a redelivery
    rng.shuffle(out)  # out of order
    return out


def test_fuzzed_jetstream_input_is_each_logged_quarantined_or_deduplicated(settings):
    """A seeded mix of 2,000 messages: nothing lost, nothing crashes, reasons are documented."""
    rng = random.Random(1616)
    events = list(simulate(1_200, seed=16))
    inputs = _fuzz_inputs(rng, [encode_event(e) for e in events])[:2_000]
    bodies = [body for body, _ in inputs]
    msg_ids = [msg_id or f"fuzz-{uuid.UUID(int=rng.getrandbits(128))}" for _, msg_id in inputs]
    report = asyncio.run(publish_raw(settings, bodies, msg_ids=msg_ids))
    stats = asyncio.run(ingest_until_idle(settings, idle=0.5))
    # JetStream dropped the repeats of a message id; everything it stored is accounted for.
    assert not report.errors, report.errors[:3]
    assert report.published + report.duplicates == len(bodies)
    assert stats.appended + stats.duplicates + stats.quarantined == report.published
    with open_log(settings, readonly=True) as log:
        items = log.quarantine_list(limit=10_000)
        assert log.verify().ok
        assert log.head == stats.appended
    assert len(items) == stats.quarantined > 0
    assert {item["reason"] for item in items} <= REASONS, {item["reason"] for item in items}
    assert stats.appended > 400 and stats.duplicates > 0
