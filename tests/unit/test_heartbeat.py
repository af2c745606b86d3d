"""The heartbeat loop stops when asked, whatever the NATS client does with the cancellation."""

from __future__ import annotations

import asyncio

from tests.support.wait import wait_until
from workers.natsio.heartbeat import Heartbeat


class _SwallowingBeat(Heartbeat):
    """A beat that, like nats-py inside a publish, swallows a cancellation and then fails."""

    beats = 0
    swallowed = 0

    async def beat(self) -> None:
        if self.status()[0] == "stopped":
            return
        self.beats += 1
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            if self.swallowed:  # only the first: a failing test must not hang its event loop
                raise
            self.swallowed += 1  # nats-py's Client._flush_pending does this
        raise RuntimeError("publish failed")


def test_stop_ends_the_loop_even_when_a_beat_swallows_the_cancellation():
    """Seen in CI: the api's clean-up waited forever for a heartbeat loop that beat on."""
    async def main():
        heartbeat = _SwallowingBeat(js=None, process="test", status=lambda: ("ok", {}),
                                    interval_secs=0.01)
        heartbeat.start()
        await wait_until(lambda: heartbeat.beats, timeout_secs=5, interval_secs=0.01,
                         message="the heartbeat loop never beat")
        await asyncio.wait_for(heartbeat.stop(), 5)  # it used to hang here for good
        return heartbeat

    heartbeat = asyncio.run(main())
    assert heartbeat._task.done() and heartbeat.beats == 1


def test_a_beat_carries_metric_families_and_a_beat_of_an_older_release_still_decodes():
    """Families round-trip through the wire format; the old flat `metrics` map is read, not needed."""
    import msgspec

    from workers.natsio.heartbeat import Beat, MetricFamily, MetricPoint

    family = MetricFamily(name="fleet.ingest.batch.commit", kind="histogram", unit="ms", points=[
        MetricPoint(labels={"outcome": "ok"}, count=3, sum=4.5, bounds=[1.0, 10.0], buckets=[1, 2, 0])])
    beat = Beat(process="ingest", state="ok", at=1.0, started_at=0.0, pid=1, host="h", interval_secs=2,
                families=[family])
    assert msgspec.json.decode(msgspec.json.encode(beat), type=Beat).families == [family]
    old = (b'{"process":"ingest","state":"ok","at":1.0,"started_at":0.0,"pid":1,"host":"h",'
           b'"interval_secs":2,"metrics":{"fleet_ingest_events{outcome=\\"appended\\"}":5}}')
    decoded = msgspec.json.decode(old, type=Beat)
    assert decoded.families == [] and decoded.metrics
