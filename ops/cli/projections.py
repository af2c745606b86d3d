"""``fleet replay``, ``fleet projections``, ``fleet rollback``, ``fleet project``.

Thin commands over :mod:`projections` (versions, rebuild, store) and the
projector in :mod:`workers.projector.loop`.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING

import click

from events.errors import NotFound, TransientError
from events.log import EventLog
from projections.errors import NoActiveVersion, VersionDamaged
from projections.model.ontology import NAME, VERSION
from projections.store.env import defer_sync
from projections.store.graph import CHECKPOINT, OUTBOX_SEQ, POISON_COUNT, GraphStore
from projections.versions.catalog import Versions, parse_version
from projections.versions.digest import digest
from projections.versions.rebuild import RebuildProgress

from ..logs import configure_logging
from ..runner import run_until_signal
from ..settings import Settings
from ._common import echo_json, json_option
from .exits import EXIT_PROBLEM

if TYPE_CHECKING:
    from workers.projector.loop import Projector

log = logging.getLogger(__name__)

_PROJECTIONS = (NAME,)
projection_arg = click.argument("projection", type=click.Choice(_PROJECTIONS), metavar="PROJECTION")


def _head(settings: Settings) -> int:
    try:
        with EventLog(settings.log_path, readonly=True) as event_log:
            return event_log.head
    except NotFound:
        return 0


def _require_log(settings: Settings) -> None:
    if not settings.log_path.exists():
        raise NotFound(f"no log at {settings.log_path} - run `fleet ingest` first or check --data-dir")


def _bar(p: RebuildProgress) -> str:
    pct = 100 * p.position / p.target if p.target else 100.0
    width = 30
    filled = int(width * min(pct, 100) / 100)
    eta = f"{p.eta_secs:5.0f}s" if p.eta_secs is not None else "    -"
    memory = (f"  mem {p.state_bytes / 2**20:,.0f}/{p.budget_bytes / 2**20:,.0f} MB"
              if p.budget_bytes else "")
    return (f"\r{NAME} v{p.version} {p.phase:<8} [{'#' * filled}{'.' * (width - filled)}]"
            f" {p.position:>10}/{p.target} {pct:5.1f}%  {p.events_per_sec:>9,.0f} ev/s  ETA {eta}"
            f"{memory}")


@click.command("replay")
@projection_arg
@click.option("--from-scratch", is_flag=True,
              help="Discard a partly built version and start again from position 0.")
@click.option("--budget-mb", type=click.IntRange(16, 1 << 20), default=None,
              help="Memory for the fold's in-memory state before it writes a segment"
                   " [FLEET_FOLD_BUDGET_MB, default 512]; at 1M events 512 MB peaked at 1.04 GB"
                   " RSS, 1024 MB at 1.37 GB (and ran slower).")
@click.option("--no-promote", is_flag=True, help="Build and catch up, but leave ACTIVE alone.")
@click.option("--check", is_flag=True,
              help="Rebuild the active version beside it (live fleet welcome) and compare digests at"
                   " the same log position; promote nothing. Exit 1 when they differ.")
@click.option("--strict", is_flag=True,
              help="Stop at the first logged event that cannot be applied (default: record it as"
                   " poison and skip it, as the live projector does).")
@click.option("--emit-diff/--no-diff", default=True, show_default=True,
              help="After promotion, send the differences from the old version as ordinary changes"
                   " (up to FLEET_CHANGES_DIFF_MAX of them; above it, and with --no-diff,"
                   " subscribers are told to resync from the export).")
@json_option
@click.pass_obj
def replay_cmd(settings: Settings, projection: str, from_scratch: bool, budget_mb: int | None,
               no_promote: bool, check: bool, strict: bool, emit_diff: bool,
               as_json: bool) -> None:
    """Build the code's version of PROJECTION from log position 0, then promote it.

    The new version is built beside the active one (queries keep answering
    from the active version), catches up to the log head, and is promoted by
    an atomic switch of the ACTIVE pointer. Interrupted (Ctrl-C, kill -9), it
    resumes from its own checkpoint when run again.

    \b
    Example:
      fleet replay graph
      fleet replay graph --from-scratch --json
      fleet replay graph --check          # is the live version what its code builds?
    """
    _require_log(settings)
    budget_bytes = (budget_mb or settings.fold_budget_mb) << 20
    interactive = sys.stderr.isatty() and not as_json
    last = [0.0]

    def progress(p: RebuildProgress) -> None:
        if interactive and (time.monotonic() - last[0] > 0.2 or p.phase == "promoted"):
            last[0] = time.monotonic()
            click.echo(_bar(p), nl=False, err=True)

    if check:
        from projections.versions.check import check_active

        checked = check_active(settings.log_path, settings.projections_dir, name=projection,
                               budget_bytes=budget_bytes, progress=progress)
        if interactive:
            click.echo("", err=True)
        if as_json:
            echo_json(checked.as_dict())
        else:
            verdict = "equal" if checked.equal else "DIFFERENT"
            click.echo(f"{projection} v{checked.version} at position {checked.position}: live digest"
                       f" {checked.live_digest}, fresh build {checked.fresh_digest}: {verdict}"
                       f" ({checked.secs:.1f}s)")
        if not checked.equal:
            sys.exit(EXIT_PROBLEM)
        return
    from workers.projector.telemetry import run_rebuild  # OpenTelemetry: only a replay

    result = run_rebuild(settings.log_path, settings.projections_dir, from_scratch=from_scratch,
                         budget_bytes=budget_bytes, promote=not no_promote,
                         strict=strict, emit_diff=True,
                         diff_max=settings.changes_diff_max if emit_diff else 0, progress=progress)
    if interactive:
        click.echo("", err=True)
    summary = result.as_dict()
    if as_json:
        echo_json(summary)
        return
    if summary.get("diff"):
        click.echo(_diff_line(summary["diff"]))
    state = "promoted" if result.promoted else "built (not promoted)"
    click.echo(f"{projection} v{result.version} {state} at position {result.position}"
               f" (resumed from {result.resumed_from}); bulk {summary['bulk_events_per_sec']:,}"
               f" events/s, total {result.total_secs:.1f}s; digest {result.digest}")
    if result.poisoned:
        click.echo(f"{result.poisoned} logged events could not be applied and were skipped:"
                   f" `fleet projections poison {projection} --version {result.version}` lists them",
                   err=True)


def _diff_line(d: dict) -> str:
    """What subscribers were sent at a version change."""
    previous = f"v{d['previous']}" if d["previous"] is not None else "an empty graph"
    if d.get("resync"):
        return (f"no diff from {previous} sent (more than FLEET_CHANGES_DIFF_MAX differences, or"
                " nothing to compare with): subscribers are told to resync from the export")
    return (f"diff from {previous}: {d['nodes_upserted']} nodes upserted, {d['nodes_deleted']} deleted,"
            f" {d['edges_added']} edges added, {d['edges_updated']} updated,"
            f" {d['edges_removed']} removed")


def _version_rows(settings: Settings, name: str, with_digest: bool) -> list[dict]:
    versions = Versions(settings.projections_dir, name)
    head = _head(settings)
    rows = []
    for info in versions.list():
        row: dict = {"projection": name, "version": info.version, "state": info.state,
                     "path": str(info.path)}
        try:
            store = GraphStore(info.path)
        except (NotFound, VersionDamaged) as e:
            row.update(position=0, lag=head, nodes=0, edges=0, poison=0)
            if isinstance(e, VersionDamaged):
                row.update(state="damaged", error=str(e))
            rows.append(row)
            continue
        try:
            with store.env.read() as txn:
                counts = store.counts(txn)
                position = store.meta_int(txn, CHECKPOINT)
                row.update(
                    position=position, lag=max(0, head - position),
                    nodes=sum(counts["nodes"].values()), edges=sum(counts["edges"].values()),
                    poison=store.meta_int(txn, POISON_COUNT),
                    outbox_seq=store.meta_int(txn, OUTBOX_SEQ),
                    size_bytes=(info.path / "data.mdb").stat().st_size,
                    nodes_by_type=counts["nodes"], edges_by_type=counts["edges"],
                )
            if with_digest:
                row["digest"] = digest(store).hexdigest
        finally:
            store.close()
        rows.append(row)
    return rows


@click.group("projections", invoke_without_command=True)
@click.option("--no-digest", is_flag=True, help="Skip the content digest (a full scan per version).")
@json_option
@click.pass_context
def projections_group(ctx: click.Context, no_digest: bool, as_json: bool) -> None:
    """List projection versions: state, position, lag, counts, digest, poison.

    \b
    Example:
      fleet projections
      fleet projections --json
      fleet projections poison graph
      fleet projections drop graph v1
    """
    if ctx.invoked_subcommand is not None:
        return
    settings: Settings = ctx.obj
    rows = [row for name in _PROJECTIONS for row in _version_rows(settings, name, not no_digest)]
    aside = [str(p) for name in _PROJECTIONS
             for p in Versions(settings.projections_dir, name).set_aside_dirs()]
    if as_json:
        echo_json({"code_versions": {NAME: VERSION}, "versions": rows, "set_aside": aside})
        return
    for path in aside:
        click.echo(f"set aside after a machine crash (rebuilt from the log; delete it when no longer"
                   f" needed): {path}")
    if not rows:
        click.echo(f"no projection versions under {settings.projections_dir} - run `fleet replay {NAME}`")
        return
    click.echo(f"{'projection':<11}{'version':<9}{'state':<10}{'position':>10}{'lag':>9}"
               f"{'nodes':>10}{'edges':>10}{'poison':>8}  digest")
    for r in rows:
        click.echo(f"{r['projection']:<11}{'v' + str(r['version']):<9}{r['state']:<10}"
                   f"{r.get('position', 0):>10}{r.get('lag', 0):>9}{r.get('nodes', 0):>10}"
                   f"{r.get('edges', 0):>10}{r.get('poison', 0):>8}  {r.get('digest', '-')}")
    click.echo(f"(this code builds {NAME} v{VERSION})")


@projections_group.command("drop")
@projection_arg
@click.argument("version")
@click.pass_obj
def drop_cmd(settings: Settings, projection: str, version: str) -> None:
    """Delete a retired (or abandoned) version of PROJECTION.

    The active version cannot be dropped; neither can one a process is writing.

    \b
    Example:
      fleet projections drop graph v1
    """
    number = parse_version(version)
    Versions(settings.projections_dir, projection).drop(number)
    click.echo(f"dropped {projection} v{number}")


@projections_group.command("poison")
@projection_arg
@click.option("--version", "version", help="Version to read [default: the active one].")
@click.option("-n", "--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option
@click.pass_obj
def poison_cmd(settings: Settings, projection: str, version: str | None, limit: int,
               as_json: bool) -> None:
    """List poison events the projector skipped: position, event, reason.

    \b
    Example:
      fleet projections poison graph --json
    """
    from projections.model.keys import unpack_int
    from projections.store.writeset import decode_props

    versions = Versions(settings.projections_dir, projection)
    number = parse_version(version) if version else versions.active()
    if number is None:
        raise NoActiveVersion(f"{projection} has no active version - run `fleet replay {projection}`")
    with GraphStore(versions.info(number).path) as store, store.env.read() as txn:
        items = []
        for key, value in txn.cursor(store.env.poison):
            items.append({"position": unpack_int(key)} | decode_props(value))
            if len(items) >= limit:
                break
    if as_json:
        echo_json({"projection": projection, "version": number, "poison": items})
        return
    for item in items:
        click.echo(f"{item['position']:>10}  {item.get('event_id') or '?'}  {item.get('type') or '?'}"
                   f"  {item.get('reason')}")
    if not items:
        click.echo(f"no poison events in {projection} v{number}")


@click.command("rollback")
@projection_arg
@json_option
@click.pass_obj
def rollback_cmd(settings: Settings, projection: str, as_json: bool) -> None:
    """Re-activate the version the active one replaced (kept until dropped).

    The re-activated version resumes from where it stopped once a projector
    running its code version applies the log again. Subscribers get a
    ``rebuilt`` notice and the exact difference, as at a promotion.

    \b
    Example:
      fleet rollback graph
    """
    from projections.versions.transition import rollback

    current, previous, diff = rollback(settings.projections_dir, projection=projection,
                                       max_changes=settings.changes_diff_max)
    if as_json:
        echo_json({"projection": projection, "from": current, "to": previous, "diff": diff.as_dict()})
    else:
        click.echo(f"{projection}: v{previous} is active again (v{current} retired); subscribers get"
                   f" a rebuilt notice, then: {_diff_line(diff.as_dict())}")


@click.command("project")
@click.option("--until-caught-up", is_flag=True,
              help="Exit once the active version has reached the log head.")
@click.option("--batch", "batch_max", type=click.IntRange(min=1),
              help="Events per live batch [FLEET_PROJECTOR_BATCH_MAX, default 10000].")
@click.option("--poll-ms", type=click.IntRange(min=1),
              help="Poll the log head this often; ingest's fleet.log.appended pings wake it sooner"
                   " [FLEET_PROJECTOR_POLL_MS, default 200].")
@click.option("--no-rebuild", is_flag=True,
              help="Do not build the code's version when it is not the active one.")
@json_option
@click.pass_obj
def project_cmd(settings: Settings, until_caught_up: bool, batch_max: int | None, poll_ms: int | None,
                no_rebuild: bool, as_json: bool) -> None:
    """Run the projector: apply new log entries to the graph until SIGTERM.

    If the code's projection version is not the active one, it is rebuilt in
    the background first (queries keep reading the active one) and promoted.
    Exit code 1 if a rebuild failed or a poison event was skipped.

    \b
    Example:
      fleet project
      fleet project --until-caught-up --json
    """
    from workers.projector.loop import Projector  # the projector and NATS: only this command

    from ..wiring import projector_config

    configure_logging("projector")
    if until_caught_up:
        _require_log(settings)
    config = projector_config(settings, auto_rebuild=not no_rebuild, batch_max=batch_max,
                              poll_interval_ms=poll_ms)
    defer_sync(settings.projection_sync_ms / 1000)
    projector = Projector(settings.log_path, settings.projections_dir, config)

    async def main(stop):
        nc = await _wake_on_appends(settings, projector)
        try:
            return await projector.run(stop, until_caught_up=until_caught_up)
        finally:
            if nc is not None:
                await nc.close()

    stats = run_until_signal(main)
    summary = {"version": stats.version, "position": stats.position, "head": stats.head,
               "lag": stats.lag, "applied": stats.applied, "poisoned": stats.poisoned,
               "batches": stats.batches, "outbox": stats.outbox, "rebuilds": stats.rebuilds,
               "rebuild_error": stats.rebuild_error}
    if as_json:
        echo_json(summary)
    else:
        click.echo(" ".join(f"{k}={v}" for k, v in summary.items() if k != "rebuilds"))
    if stats.rebuild_error or stats.poisoned:
        if stats.rebuild_error:
            click.echo(f"error: {stats.rebuild_error}", err=True)
        sys.exit(EXIT_PROBLEM)


async def _wake_on_appends(settings: Settings, projector: Projector):
    """Subscribe to ingest's ``fleet.log.appended`` pings (the projector polls as well).

    NATS is optional here: the projector reads the log file, so without a
    server it polls only, and says so.
    """
    from workers.natsio.client import LOG_APPENDED_SUBJECT, connect

    try:
        nc = await connect(settings.nats_url, name="fleet-project", connect_timeout_secs=2)
    except TransientError as e:
        log.warning("no NATS: polling the log only", extra={"error": str(e)})
        return None

    async def on_appended(_msg) -> None:
        projector.notify()

    await nc.subscribe(LOG_APPENDED_SUBJECT, cb=on_appended)
    return nc


def register(cli: click.Group) -> None:
    cli.add_command(replay_cmd)
    cli.add_command(projections_group)
    cli.add_command(rollback_cmd)
    cli.add_command(project_cmd)
