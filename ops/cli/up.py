"""``fleet up`` and ``fleet dev``: run the whole fleet in one terminal."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
from pathlib import Path

import click

from ..procfile import FLEET_PROCESSES, read_procfile
from ..settings import Settings


def _env(settings: Settings) -> dict[str, str]:
    # `fleet` in a Procfile must be this installation's, activated or not.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return dict(os.environ, FLEET_DATA_DIR=str(settings.data_dir), PATH=path)


def _processes(procfile: Path | None) -> dict[str, str]:
    if procfile is None and Path("Procfile").exists():
        procfile = Path("Procfile")
    return read_procfile(procfile) if procfile else dict(FLEET_PROCESSES)


@click.command("up")
@click.option("--procfile", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Procfile to run [default ./Procfile, else the built-in process list].")
@click.pass_obj
def up_cmd(settings: Settings, procfile: Path | None) -> None:
    """Run every Procfile process (nats, ingest, ...) under honcho until Ctrl-C.

    \b
    Example:
      fleet up
      FLEET_DATA_DIR=/srv/fleet fleet up --procfile deploy/Procfile
    """
    from honcho.manager import Manager

    manager = Manager()
    env = _env(settings)
    for name, command in _processes(procfile).items():
        manager.add_process(name, command, env=env)
    manager.loop()
    sys.exit(manager.returncode)


@click.command("dev")
@click.option("--procfile", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--watch", "watch_paths", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="Folders to watch [default: events, projections, workers, ops].")
@click.pass_obj
def dev_cmd(settings: Settings, procfile: Path | None, watch_paths: tuple[Path, ...]) -> None:
    """Run the fleet and restart its processes when the code changes (watchfiles).

    NATS keeps running across reloads. Editing the projection's ontology and
    bumping its version makes the restarted worker rebuild the new version
    beside the old one while queries keep answering from the old one.

    \b
    Example:
      fleet dev
    """
    import watchfiles

    processes = _processes(procfile)
    env = _env(settings)
    root = Path(__file__).resolve().parents[2]
    paths = list(watch_paths) or [root / p for p in ("events", "projections", "workers", "ops")]
    stop = threading.Event()
    running: dict[str, subprocess.Popen] = {}

    def start(names):
        for name in names:
            click.echo(f"[dev] starting {name}: {processes[name]}", err=True)
            running[name] = subprocess.Popen(shlex.split(processes[name]), env=env, start_new_session=True)

    def terminate(names):
        for name in names:
            proc = running.pop(name, None)
            if proc and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # the whole group: a process and its children
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()

    reloadable = [n for n in processes if n != "nats"]
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    start(processes)
    try:
        for changes in watchfiles.watch(*paths, stop_event=stop, watch_filter=watchfiles.PythonFilter()):
            changed = sorted({Path(p).name for _, p in changes})
            click.echo(f"[dev] {', '.join(changed)} changed: restarting {', '.join(reloadable)}", err=True)
            terminate(reloadable)
            start(reloadable)
    except KeyboardInterrupt:
        pass
    finally:
        terminate(list(running))


def register(cli: click.Group) -> None:
    cli.add_command(up_cmd)
    cli.add_command(dev_cmd)
