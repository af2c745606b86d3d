"""The fleet's NATS client against a real nats-server: published frames, the acked sender."""

from __future__ import annotations

import asyncio

import pytest

from workers.natsio.client import hpub_frame


def test_published_frames_arrive_in_order_with_their_headers(nats_server):
    from nats.errors import ConnectionClosedError

    from workers.natsio.client import connect

    async def main():
        nc = await connect(nats_server.url, name="test-frames")
        got: list[tuple[str, str, bytes, dict]] = []
        done = asyncio.Event()

        async def on_msg(msg):
            got.append((msg.subject, msg.reply, msg.data, msg.headers))
            if len(got) == 501:
                done.set()

        await nc.subscribe("frames.>", cb=on_msg)
        frames = [hpub_frame(f"frames.{i % 3}", f"r.{i}", {"Nats-Msg-Id": f"m{i}"}, b"p%d" % i)
                  for i in range(500)]
        await nc.publish_frames(b"".join(frames[:250]), 250, 0)
        await nc.publish("frames.plain", b"between")  # shares the pending buffer: stays in order
        await nc.publish_frames(b"".join(frames[250:]), 250, 0)
        await asyncio.wait_for(done.wait(), 10)
        await nc.close()
        with pytest.raises(ConnectionClosedError):
            await nc.publish_frames(frames[0], 1, 0)
        return got

    got = asyncio.run(main())
    assert [m[0] for m in got[:3]] == ["frames.0", "frames.1", "frames.2"]
    assert (got[250][0], got[250][2]) == ("frames.plain", b"between")
    ours = got[:250] + got[251:]
    assert [(m[1], m[2], m[3]["Nats-Msg-Id"]) for m in ours] == [
        (f"r.{i}", b"p%d" % i, f"m{i}") for i in range(500)]


def test_the_acked_sender_pushes_its_frames_before_waiting_for_room(nats_server):
    """A window smaller than the round: the queued frames must go out, or no ack ever comes."""
    from workers.changefeed.acks import AckedSender
    from workers.natsio.client import connect
    from workers.natsio.streams import StreamSpec, ensure_stream

    async def main():
        nc = await connect(nats_server.url, name="test-acked-sender")
        await ensure_stream(nc.jetstream(), StreamSpec(name="ACKS", subjects=("acks.>",)))
        sender = AckedSender(nc, window=2, ack_timeout_secs=30, push_bytes=1 << 20)
        sender.begin()
        for i in range(50):
            await sender.send("acks.x", b"%d" % i, {"Nats-Msg-Id": f"a{i}"}, ack=i % 2 == 1 or i == 49)
        acks = await sender.flush()
        # the same ids again: JetStream's dedup window answers duplicate
        sender.begin()
        await sender.send("acks.x", b"0", {"Nats-Msg-Id": "a0"})
        again = await sender.flush()
        await sender.close()
        await nc.close()
        return acks, again

    # Frames held back would stall the first wait for room until the 30 s ack timeout.
    acks, again = asyncio.run(asyncio.wait_for(main(), 15))
    assert [i for i, _ in acks] == [i for i in range(50) if i % 2 == 1 or i == 49]
    assert all(a.ok and not a.duplicate for _, a in acks)
    assert [a.stream_seq for _, a in acks] == [i + 1 for i, _ in acks]
    assert again[0][1].duplicate
