"""Benchmark: start-up time of the ``fleet`` command line, as an operator feels it.

    python bench/cli_startup.py [--runs 9] [--events 2000] [--data-dir DIR] [--root CHECKOUT]

Builds a tiny graph (a log of simulated events, rebuilt into the projection)
in a temporary data dir, then times whole processes: bare ``python -c pass``
for reference, ``fleet --help`` and ``fleet query node project:simulate:1``,
each run ``--runs`` times after one warm-up, and prints the medians as
``name: value unit`` lines, with how many modules ``import ops.cli`` loads.
``--root`` runs the CLI of another checkout (a ``git worktree`` of an older
commit) over the same data, for side-by-side figures; ``--data-dir`` keeps the
graph between calls.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _util import figure  # bench/_util.py, same directory

_REPO = Path(__file__).resolve().parent.parent
_FLEET = "import sys; sys.argv[0] = 'fleet'; from ops.cli import main; main()"
_MODULES = "import sys; n = len(sys.modules); import ops.cli; print(len(sys.modules) - n)"


def build_graph(data_dir: Path, n_events: int) -> None:
    """A log of ``n_events`` simulated events and its graph projection, under ``data_dir``."""
    from events.codec import encode_event
    from events.log import EventLog
    from events.logrows import Accepted
    from ops.simulate import simulate
    from projections.versions.rebuild import rebuild

    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "log.db"
    with EventLog(log_path, sync="normal") as event_log:
        event_log.append([Accepted(e.event_id, e.__struct_config__.tag, e.source,
                                   e.occurred_at.isoformat(), encode_event(e).decode())
                          for e in simulate(n_events)])
    rebuild(log_path, data_dir / "projections", with_digest=False)


def _median_ms(argv: list[str], env: dict[str, str], cwd: Path, runs: int) -> float:
    """Median wall time of ``argv`` as a whole process, in ms, after one warm-up run."""
    times = []
    for i in range(runs + 1):
        started = time.perf_counter()
        result = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, check=False)
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} exited {result.returncode}: {result.stderr[-2000:]}")
        if i:
            times.append(elapsed * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9, help="counted runs of each command")
    parser.add_argument("--events", type=int, default=2000, help="simulated events in the graph")
    parser.add_argument("--data-dir", type=Path, help="build the graph here once and keep it")
    parser.add_argument("--root", type=Path, default=_REPO, help="checkout whose CLI is timed")
    args = parser.parse_args()

    root = args.root.resolve()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-cli-"))
    try:
        if not (data_dir / "projections").exists():
            build_graph(data_dir, args.events)
        env = {**os.environ, "PYTHONPATH": str(root), "FLEET_DATA_DIR": str(data_dir)}
        python = [sys.executable]
        figure("python_pass_median", _median_ms(python + ["-c", "pass"], env, root, args.runs), "ms")
        figure("fleet_help_median", _median_ms(python + ["-c", _FLEET, "--help"], env, root, args.runs),
               "ms")
        figure("fleet_query_node_median",
               _median_ms(python + ["-c", _FLEET, "query", "node", "project:simulate:1"], env, root,
                          args.runs), "ms")
        loaded = subprocess.run(python + ["-c", _MODULES], env=env, cwd=root, capture_output=True,
                                text=True, check=True).stdout.strip()
        figure("import_ops_cli_modules", int(loaded), "modules")
    finally:
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
