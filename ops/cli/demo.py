"""``fleet demo``: the main job on the embedded default, in one command."""

from __future__ import annotations

import asyncio
import time

import click

from workers.ingest.consumer import IngestWorker
from workers.natsio.client import connect
from workers.natsio.publish import publish_events
from workers.natsio.streams import ensure_stream

from ..embedded import free_port, port_of
from ..logs import configure_logging
from ..settings import Settings
from ..wiring import ingest_config, log_writer, open_log, projector_config, sdlc_stream
from ._common import echo_json, json_option, progress_printer
from .nats import embedded_server
from .publish import SEED


@click.command("demo")
@click.option("--events", "n_events", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True,
              help="Seed of the workload; another seed adds another organisation (source simulate-<seed>).")
@json_option
@click.pass_obj
def demo_cmd(settings: Settings, n_events: int, seed: int, as_json: bool) -> None:
    """Start an embedded nats-server, the ingest worker and a simulated workload.

    Publishes N simulated events, ingests them into DATA_DIR/log.db, verifies
    the log, brings the graph up to it (a rebuild the first time, live apply
    after) and prints queries that work on its data. Uses the configured NATS when
    FLEET_NATS_URL is set, else an embedded server on DATA_DIR/nats (on a free
    port when 4222 is taken). Running it twice adds nothing the second time:
    the workload is deterministic and the log drops ids it already has;
    `--seed 7` then adds a second organisation beside the first (its ids are
    `project:simulate-7:1`, ...), so the graph grows.

    \b
    Example:
      fleet demo --events 100000
    """
    from ..simulate import simulate

    configure_logging("demo", "WARNING")
    server = None
    if settings.embedded_nats:
        host, _ = port_of(settings.nats_url)
        try:
            server = embedded_server(settings).start(timeout_secs=3)
        except Exception:
            server = embedded_server(settings, port=free_port(host)).start()
        settings = settings.with_overrides(nats_url=server.url)
        click.echo(f"embedded nats-server on {server.address}", err=True)

    async def main():
        nc = await connect(settings.nats_url, name="fleet-demo")
        writer = log_writer(settings)
        stop = asyncio.Event()
        try:
            await ensure_stream(nc.jetstream(), sdlc_stream(settings))
            worker = IngestWorker(nc, writer, ingest_config(settings))
            ingest = asyncio.create_task(worker.run(stop, until_idle_secs=1.0))
            started = time.monotonic()
            report = await publish_events(nc, simulate(n_events, seed=seed), prefix=settings.subject_prefix,
                                          progress=progress_printer(n_events, "published"))
            published_at = time.monotonic()
            stats = await ingest
            done = time.monotonic()
            return report, stats, started, published_at, done
        finally:
            writer.close()
            await nc.drain()

    try:
        report, stats, started, published_at, done = asyncio.run(main())
    finally:
        if server:
            server.stop()
    with open_log(settings, readonly=True) as event_log:
        verify = event_log.verify()
        log_stats = event_log.stats()
    graph, examples = _graph(settings)
    summary = {
        "published": report.published,
        "publish_duplicates": report.duplicates,
        "appended": stats.appended,
        "duplicates": stats.duplicates,
        "quarantined": stats.quarantined,
        "log_head": log_stats["head"],
        "log_verified": verify.ok,
        "seconds": round(done - started, 2),
        "log": log_stats["path"],
        "graph": graph,
        "try": examples,
    }
    if as_json:
        echo_json(summary)
        return
    click.echo(f"published {report.published} events ({report.duplicates} duplicates dropped by JetStream)"
               f" in {published_at - started:.1f}s")
    click.echo(f"ingested  {stats.appended} new, {stats.duplicates} duplicates, {stats.quarantined} quarantined;"
               f" log head {log_stats['head']} ({'verified' if verify.ok else 'VERIFY FAILED'})")
    click.echo(f"graph     v{graph['version']} at position {graph['position']}: {graph['nodes']:,} nodes,"
               f" {graph['edges']:,} edges ({graph['seconds']:.1f}s)")
    click.echo(f"try (data in {settings.data_dir}):")
    for command in examples:
        click.echo(f"  {command}")


def _graph(settings: Settings) -> tuple[dict, list[str]]:
    """Bring the graph up to the log (a rebuild the first time: the fold engine), then pick
    queries that have answers in this data."""
    from projections.read.questions import open_issues
    from projections.read.reader import GraphReader
    from workers.projector.loop import Projector

    started = time.monotonic()
    projector = Projector(settings.log_path, settings.projections_dir,
                          projector_config(settings, auto_rebuild=True, poll_interval_ms=50))
    stats = asyncio.run(projector.run(asyncio.Event(), until_caught_up=True))
    if stats.rebuild_error:
        raise click.ClickException(f"building the graph failed: {stats.rebuild_error}")
    reader = GraphReader(settings.projections_dir)
    try:
        counts = reader.counts()
        examples = ["fleet query counts"]
        best = None
        for project in reader.find("Project", limit=50).items:
            issues = open_issues(reader, project.id, limit=1000)
            if issues and (best is None or len(issues) > len(best[1])):
                best = (project, issues)
        if best is not None:
            project, issues = best
            examples += [f"fleet query node {project.id}",
                         f"fleet query open-issues {project.id} -n 10",
                         f"fleet query neighbors {issues[0].id}"]
        examples += ["fleet log stats", "fleet up   # the whole fleet: ingest, worker, api"]
    finally:
        reader.close()
    graph = {"version": counts.get("version"), "position": counts.get("position"),
             "nodes": sum(counts.get("nodes", {}).values()),
             "edges": sum(counts.get("edges", {}).values()),
             "seconds": round(time.monotonic() - started, 2)}
    return graph, examples


def register(cli: click.Group) -> None:
    cli.add_command(demo_cmd)
