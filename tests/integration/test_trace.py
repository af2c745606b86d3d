"""One trace spans publish to graph change: publish -> ingest -> projection apply -> change publish."""

from __future__ import annotations

import asyncio

from opentelemetry import trace

from ops.wiring import sdlc_stream
from tests.support.changes import project, publish_all, workload
from tests.support.ingest import ingest_until_idle
from tests.support.issues import make_issue
from workers.natsio.client import connect
from workers.natsio.publish import publish_events
from workers.natsio.streams import ensure_stream

tracer = trace.get_tracer(__name__)


def test_one_trace_from_publish_to_graph_change(settings, spans):
    """A producer span's trace id reaches ingest, the projection's apply and the change publish."""
    setup = workload(200)
    traced = make_issue(10_000, project_id=setup_project(setup))

    async def publish(events, *, traced=False):
        nc = await connect(settings.nats_url, name="test")
        await ensure_stream(nc.jetstream(), sdlc_stream(settings))
        await publish_events(nc, events, prefix=settings.subject_prefix, trace=traced)
        await nc.drain()

    async def drain_changes():
        nc = await connect(settings.nats_url, name="test")
        await publish_all(nc, settings)
        await nc.drain()

    asyncio.run(publish(setup))
    asyncio.run(ingest_until_idle(settings))
    project(settings)  # builds and promotes v1 from the setup events
    with tracer.start_as_current_span("producer publish") as root:
        asyncio.run(publish([traced], traced=True))
    asyncio.run(ingest_until_idle(settings))
    project(settings)
    asyncio.run(drain_changes())
    trace_id = root.get_span_context().trace_id
    names = {s.name for s in spans.get_finished_spans() if s.context.trace_id == trace_id}
    assert {"producer publish", "sdlc.ingest", "projection.apply", "graph.change publish"} <= names


def setup_project(events) -> int:
    """The id of a project the setup created (the traced issue lives there)."""
    return next(e.project_id for e in events if e.__struct_config__.tag == "project.created")
