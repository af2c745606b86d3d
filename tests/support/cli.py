"""Running the `fleet` CLI: as a child process of this interpreter, or in-process."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from ops.cli import main


def fleet_cmd(*args: str) -> list[str]:
    """The command line of the `fleet` CLI in this interpreter."""
    return [sys.executable, "-c", "from ops.cli import main; main()", *args]


def settings_env(settings, **extra: str) -> dict[str, str]:
    """Environment for a `fleet` subprocess that uses ``settings``."""
    env = dict(os.environ)
    env.update({
        "FLEET_DATA_DIR": str(settings.data_dir),
        "FLEET_NATS_URL": settings.nats_url,
        "FLEET_STREAM": settings.stream,
        "FLEET_SUBJECT_PREFIX": settings.subject_prefix,
    })
    env.update(extra)
    return env


def fleet(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run ``fleet`` in-process; (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["fleet", *args])
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code or 0
    out, err = capsys.readouterr()
    return code, out, err


def fleet_health(env, *args: str) -> subprocess.CompletedProcess:
    """`fleet health` run once with ``env``."""
    return subprocess.run(fleet_cmd("health", *args), env=env, capture_output=True, timeout=30)


def healthy_report(env) -> dict | None:
    """The `fleet health --json` report if it says healthy (exit 0), else None (to wait on)."""
    result = fleet_health(env, "--json")
    return json.loads(result.stdout) if result.returncode == 0 else None
