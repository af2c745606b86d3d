"""The ingest worker's pull requests and ack subjects, without a server."""

from __future__ import annotations

import asyncio
import json

from events.chain import Tail
from workers.ingest.config import IngestConfig
from workers.ingest.consumer import IngestWorker, ack_seqs


def _requesting_worker(requests: list[dict], **config) -> IngestWorker:
    """A worker with no server: the pull requests it sends are decoded into ``requests``."""
    from workers.natsio.client import FleetClient
    from workers.natsio.streams import StreamSpec

    class Recording(FleetClient):
        async def publish(self, subject, payload=b"", reply="", headers=None):
            requests.append(json.loads(payload))

    class NoWriter:
        committed_seq = 0
        tail = Tail()

    return IngestWorker(Recording(), NoWriter(),
                        IngestConfig(stream=StreamSpec(name="SDLC", subjects=("sdlc.>",)), **config))


def test_a_request_half_its_lifetime_old_is_renewed_even_for_a_few_messages():
    """Under a trickle the newest request is topped up before it expires, so one is always open."""
    requests: list[dict] = []
    worker = _requesting_worker(requests, batch_max=100, pull_expires_secs=2)
    config = worker._config

    async def main():
        await worker._request_more()  # nothing open: two batches' worth
        worker._outstanding -= 10  # ten messages arrived since
        await worker._request_more()  # a fresh request with ten missing: not worth one yet
        worker._last_request_at -= config.pull_expires_secs * 0.6
        await worker._request_more()  # past half its lifetime: top up the ten
        await worker._request_more()  # and not again right after

    asyncio.run(main())
    assert [r["batch"] for r in requests] == [200, 10]
    assert all(r["expires"] == 2_000_000_000 for r in requests)


def test_each_request_asks_for_its_share_of_the_byte_budget_but_room_for_one_message():
    """What is in flight stays under ``inflight_bytes`` (nats-server cuts off a client with
    more than its max_pending unread), yet one message of the largest size always fits."""
    from workers.natsio.client import FleetClient

    requests: list[dict] = []
    for budget in (100 * 2**20, 1000):
        asyncio.run(_requesting_worker(requests, batch_max=100, inflight_bytes=budget)._request_more())
    payload_max = FleetClient().max_payload
    assert [r["max_bytes"] for r in requests] == [100 * 2**20, payload_max + 64 * 1024]


def test_ack_subjects_give_stream_and_consumer_sequences():
    """Both JetStream ack subject layouts (with and without domain and account)."""
    assert ack_seqs(b"$JS.ACK.SDLC.ingest.1.42.17.1700000000000000000.3") == (42, 17)
    assert ack_seqs(b"$JS.ACK.hub.ACC1.SDLC.ingest.2.42.17.1700000000000000000.3.tok") == (42, 17)
