"""``fleet up``, ``fleet restart`` and ``fleet dev``: run and supervise the fleet in one terminal."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import click

from ..procfile import FLEET_PROCESSES, read_procfile
from ..settings import Settings
from .exits import EXIT_UNAVAILABLE, EXIT_USAGE


def _env(settings: Settings) -> dict[str, str]:
    # `fleet` in a Procfile must be this installation's, activated or not.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return dict(os.environ, FLEET_DATA_DIR=str(settings.data_dir.resolve()), PATH=path,
                PYTHONUNBUFFERED="1")


def _processes(procfile: Path | None) -> tuple[dict[str, str], str]:
    """The processes to run and where they come from (for messages)."""
    if procfile is None and Path("Procfile").exists():
        procfile = Path("Procfile")
    if procfile is None:
        return dict(FLEET_PROCESSES), "the built-in process list"
    try:
        return read_procfile(procfile), str(procfile)
    except ValueError as e:
        raise click.UsageError(str(e)) from e


def _select(processes: dict[str, str], source: str, only: str | None) -> dict[str, str]:
    if only is None:
        return processes
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in processes]
    if unknown or not names:
        raise click.BadParameter(f"{', '.join(map(repr, unknown)) or 'nothing'} is not a process of"
                                 f" {source}, which has {', '.join(processes)} - e.g. --only ingest,worker",
                                 param_hint="--only")
    return {n: processes[n] for n in processes if n in names}


def _check_ports(settings: Settings, processes: dict[str, str]) -> None:
    """Fail before starting anything when a port a process will listen on is taken."""
    from ..embedded import port_of
    from ..ports import check_api_port, check_nats_port

    if "nats" in processes and settings.embedded_nats:
        check_nats_port(*port_of(settings.nats_url))
    if "api" in processes:
        check_api_port(settings.api_host, settings.api_port)


def _already_running(settings: Settings) -> None:
    from ..supervise import read_state

    state = read_state(settings.data_dir)
    if state is not None and state["supervisor"].get("running"):
        click.echo(f"error: `fleet up` (pid {state['supervisor'].get('pid')}) already runs the fleet on"
                   f" {settings.data_dir} - `fleet restart NAME` restarts one process of it", err=True)
        sys.exit(EXIT_USAGE)


@click.command("up")
@click.option("--procfile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Procfile to run [default ./Procfile, else the built-in process list].")
@click.option("--only", metavar="NAME,NAME",
              help="Run only these Procfile processes, e.g. --only ingest,worker.")
@click.option("--grace-secs", type=click.IntRange(1, 3600),
              help="How long a process may take to stop after SIGTERM before SIGKILL"
                   " [FLEET_STOP_GRACE_SECS, default 30].")
@click.option("--export", "export", nargs=2, type=(click.Choice(["systemd"]), click.Path(path_type=Path)),
              metavar="systemd DIR",
              help="Write systemd unit files for these processes into DIR instead of running them.")
@click.pass_obj
def up_cmd(settings: Settings, procfile: Path | None, only: str | None, grace_secs: int | None,
           export: tuple[str, Path] | None) -> None:
    """Run the Procfile's processes (nats, ingest, worker, api) and keep them running.

    A process that exits is started again after a back-off (1 s, doubling up
    to 30 s, from 1 s again once it stayed up 30 s) while the others keep
    running; `fleet health` shows each one's restarts. Ctrl-C or SIGTERM
    stops every process (SIGTERM to each, NATS last) and sends SIGKILL only
    to one still running after the grace period, naming it; the exit code is
    0, or 1 when one needed SIGKILL. A port that is taken (the embedded NATS's,
    the api's) stops it before anything starts, naming who holds it.

    \b
    Example:
      fleet up
      fleet up --only ingest,worker
      FLEET_DATA_DIR=/srv/fleet fleet up --procfile deploy/Procfile
      fleet up --export systemd /etc/systemd/system   # then: systemctl enable --now graphfleet.target
    """
    processes, source = _processes(procfile)
    processes = _select(processes, source, only)
    grace = grace_secs or settings.stop_grace_secs
    if export is not None:
        from ..systemd import export_systemd

        written = export_systemd(export[1], processes, data_dir=settings.data_dir, grace_secs=grace)
        for path in written:
            click.echo(str(path))
        click.echo(f"{len(written)} unit files for {', '.join(processes)}; secrets (FLEET_NATS_PASSWORD,"
                   " FLEET_GITHUB_SECRET, ...) go in /etc/graphfleet/env. Then: systemctl daemon-reload &&"
                   " systemctl enable --now graphfleet.target", err=True)
        return
    from ..supervise import Supervisor

    _already_running(settings)
    supervisor = Supervisor(processes, env=_env(settings), data_dir=settings.data_dir, grace_secs=grace)
    # ports after what a `fleet up` that died left running is stopped (its nats would hold 4222)
    sys.exit(supervisor.run(before_start=lambda: _check_ports(settings, processes)))


@click.command("restart")
@click.argument("names", nargs=-1, required=True)
@click.pass_obj
def restart_cmd(settings: Settings, names: tuple[str, ...]) -> None:
    """Restart processes of the running `fleet up` (on the same data dir); wait until they are back.

    Each gets SIGTERM (SIGKILL after the grace period) and is started again at
    once. Exit 3 when no `fleet up` runs on DATA_DIR, 2 for a name it does not run.

    \b
    Example:
      fleet restart worker
      fleet restart ingest api
    """
    from events.errors import ConfigError

    from ..supervise import SupervisorError, request_restart

    for name in names:
        try:
            old, new = request_restart(settings.data_dir, name)
        except ConfigError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(EXIT_USAGE)
        except SupervisorError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(EXIT_UNAVAILABLE)
        click.echo(f"{name} restarted (pid {old} -> {new})")


@click.command("dev")
@click.option("--procfile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--watch", "watch_paths", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Folders to watch [default: events, projections, workers, ops].")
@click.pass_obj
def dev_cmd(settings: Settings, procfile: Path | None, watch_paths: tuple[Path, ...]) -> None:
    """Run the fleet like `fleet up` and restart its processes when the code changes (watchfiles).

    NATS keeps running across reloads. Editing the projection's ontology and
    bumping its version makes the restarted worker rebuild the new version
    beside the old one while queries keep answering from the old one.

    \b
    Example:
      fleet dev
    """
    import watchfiles

    from ..supervise import Supervisor

    processes, _ = _processes(procfile)
    _already_running(settings)
    root = Path(__file__).resolve().parents[2]
    paths = list(watch_paths) or [root / p for p in ("events", "projections", "workers", "ops")]
    supervisor = Supervisor(processes, env=_env(settings), data_dir=settings.data_dir,
                            grace_secs=settings.stop_grace_secs)
    reloadable = [n for n in processes if n != "nats"]
    stop = threading.Event()

    def watch() -> None:
        for changes in watchfiles.watch(*paths, stop_event=stop, watch_filter=watchfiles.PythonFilter()):
            changed = sorted({Path(p).name for _, p in changes})
            supervisor.say(f"[dev] {', '.join(changed)} changed: restarting {', '.join(reloadable)}")
            for name in reloadable:
                supervisor.restart(name)

    watcher = threading.Thread(target=watch, name="dev-watch", daemon=True)
    watcher.start()
    try:
        code = supervisor.run(before_start=lambda: _check_ports(settings, processes))
    finally:
        stop.set()
        watcher.join(timeout=5)
    sys.exit(code)


def register(cli: click.Group) -> None:
    cli.add_command(up_cmd)
    cli.add_command(restart_cmd)
    cli.add_command(dev_cmd)
