"""systemd unit files for the Procfile's processes, rendered by honcho's systemd exporter.

Our own templates: the absolute path of this installation's ``fleet``,
``FLEET_DATA_DIR`` and the other non-secret ``FLEET_*`` settings of the
exporting shell, secrets from an optional ``EnvironmentFile``, the stop
grace period as ``TimeoutStopSec``, and NATS started first and stopped last.
"""

from __future__ import annotations

import getpass
import os
import re
import shlex
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["APP", "SECRET_VARIABLES", "export_systemd", "render_systemd"]

#: the target's name; each process is ``graphfleet-<name>.service``
APP = "graphfleet"
#: never written into a unit file (they are often world-readable): put them in the EnvironmentFile
SECRET_VARIABLES = frozenset({"FLEET_NATS_PASSWORD", "FLEET_GITLAB_TOKEN", "FLEET_GITHUB_SECRET"})
_NOT_FOR_PRODUCTION = frozenset({"FLEET_TESTING", "FLEET_FAILPOINT", "FLEET_DATA_DIR"})
_SHELL_SYNTAX = re.compile(r"[|&;<>()$`*?\[\]{}~]")

_TEMPLATES = {
    "master.target": """\
[Unit]
Description=graphfleet: every process of {{ app_root }} (data in {{ data_dir }})
Wants={{ master_wants }}

[Install]
WantedBy=multi-user.target
""",
    "process_master.target": """\
[Unit]
PartOf={{ app }}.target
Wants={{ process_master_wants }}
""",
    "process.service": """\
[Unit]
Description=graphfleet {{ process.name }} (Procfile process)
PartOf={{ process_master_name }}.target
StartLimitIntervalSec=0
{% if nats_unit and process.name != "nats" -%}
# started after NATS and, at a stop, stopped before it
After={{ nats_unit }}
{% endif %}
[Service]
Type=simple
User={{ user }}
WorkingDirectory={{ app_root }}
{% for k, v in process.env.items() -%}
Environment="{{ k }}={{ v | unit_quote }}"
{% endfor -%}
EnvironmentFile=-{{ env_file }}
ExecStart={{ process.cmd }}
Restart=always
RestartSec=2
KillMode=control-group
KillSignal=SIGTERM
TimeoutStopSec={{ grace_secs }}
StandardInput=null
StandardOutput=journal
StandardError=journal
SyslogIdentifier={{ app }}-{{ process.name }}

[Install]
WantedBy=multi-user.target
""",
}


def _unit_quote(value: str) -> str:
    """A value inside ``"..."`` in a unit file (``%`` is a specifier there)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")


def _exec_start(command: str, path: str) -> str:
    """``command`` as ExecStart: its program by absolute path, quoted for systemd."""
    first, _, rest = command.strip().partition(" ")
    if "/" not in first and shutil.which(first, path=path):
        command = f"{os.path.abspath(shutil.which(first, path=path))} {rest}".strip()
    if _SHELL_SYNTAX.search(command):
        return "/bin/sh -c " + '"' + _unit_quote("exec " + command).replace("$", "$$") + '"'
    words = shlex.split(command)
    out = []
    for word in words:
        escaped = _unit_quote(word).replace("$", "$$")
        out.append(f'"{escaped}"' if not word or re.search(r"\s|['\"\\]", word) else escaped)
    return " ".join(out)


def render_systemd(processes: Mapping[str, str], *, data_dir: Path, grace_secs: float,
                   environ: Mapping[str, str] | None = None, app_root: Path | None = None,
                   user: str | None = None, env_file: Path | None = None) -> dict[str, str]:
    """Unit file name -> content for ``processes`` (name -> Procfile command)."""
    from honcho.environ import ProcessParams
    from honcho.export.systemd import Export
    from jinja2 import DictLoader, Environment

    environ = os.environ if environ is None else environ
    # `fleet` in a Procfile is this installation's, as under `fleet up`
    path = os.pathsep.join([str(Path(sys.executable).parent), environ.get("PATH", os.defpath)])
    env = {"FLEET_DATA_DIR": str(Path(data_dir).resolve())}
    env.update({k: v for k, v in sorted(environ.items())
                if k.startswith("FLEET_") and k not in SECRET_VARIABLES | _NOT_FOR_PRODUCTION
                and not (k in ("FLEET_NATS_URL", "FLEET_BROKER_URL") and "@" in v)})
    params = [ProcessParams(name, _exec_start(command, path), False, env)
              for name, command in processes.items()]
    templates = Environment(loader=DictLoader(_TEMPLATES), keep_trailing_newline=True)
    templates.filters["unit_quote"] = _unit_quote
    context = {
        "app": APP,
        "app_root": str((app_root or Path.cwd()).resolve()),
        "data_dir": env["FLEET_DATA_DIR"],
        "user": user or getpass.getuser(),
        "env_file": str(env_file or Path("/etc") / APP / "env"),
        "grace_secs": f"{grace_secs:g}",
        "nats_unit": f"{APP}-nats.service" if "nats" in processes else "",
    }
    return {f.name: f.content for f in Export(template_env=templates).render(params, context)}


def export_systemd(directory: Path, processes: Mapping[str, str], **kw) -> list[Path]:
    """Write :func:`render_systemd`'s files into ``directory``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in render_systemd(processes, **kw).items():
        path = directory / name
        path.write_text(content)
        written.append(path)
    return written
