"""``fleet import-webhooks``: backfill the graph from saved webhook payloads.

Files go through the same adapters as ``POST /hooks/<platform>``. A file has no
delivery id, so its events are keyed on the SHA-256 of its payload as
canonical JSON (the adapters' default, see :mod:`events.adapters.common`):
importing a file twice, or a re-formatted copy of it, maps to the same event
ids, and JetStream's dedup window and the log's unique ids drop the repeat.

A file has no recorded delivery time either. A payload that carries no
timestamp for its event (a GitLab tag push, a push without commits) is dated
by ``--received-at`` when given, else by the file's modification time, as the
gateway dates it by its arrival; the summary counts and names those files.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Iterable, Iterator

import click
import msgspec

from events.adapters import Mapped, map_github, map_gitlab, parse_timestamp
from events.adapters.common import Undated
from events.adapters.gitlab import HEADERS as GITLAB_HEADERS
from events.codec import check_depth, encode_event
from events.errors import InvalidEvent
from events.types import Event
from workers.natsio.publish import PublishReport, publish_events
from workers.natsio.streams import ensure_stream

from ..settings import Settings
from ..wiring import sdlc_stream
from ._common import echo_json, json_option, progress_printer, run_with_nats
from .exits import EXIT_PROBLEM

__all__ = ["WebhookFile", "find_files", "map_file"]

_ADAPTERS = {"gitlab": map_gitlab, "github": map_github}
_json = msgspec.json.Decoder()


@dataclass(frozen=True)
class WebhookFile:
    """A saved payload and the event name (webhook header value) it is mapped under."""

    path: Path
    event_name: str | None


def find_files(platform: str, paths: Iterable[Path], event: str | None = None) -> Iterator[WebhookFile]:
    """Every ``*.json`` file under ``paths`` (sorted per folder), with its event name.

    The event name is ``event`` when given, else the name of the folder that
    holds the file (``<event>/<name>.json``). For GitLab a folder name counts
    only when it is a hook name (``Issue Hook``, ``issue_hook``); otherwise
    the payload's ``object_kind`` or ``event_name`` decides.
    """
    for path in paths:
        files = sorted(path.rglob("*.json")) if path.is_dir() else [path]
        for file in files:
            name = event or file.resolve().parent.name
            if platform == "gitlab":
                name = _gitlab_header(name) or event
            yield WebhookFile(file, name)


def _gitlab_header(name: str) -> str | None:
    for candidate in (name, name.replace("_", " ").replace("-", " ").title()):
        if candidate in GITLAB_HEADERS:
            return candidate
    return None


def map_file(platform: str, raw: bytes, event_name: str | None,
             received_at: datetime | None = None) -> Mapped:
    """Map one saved payload; raises :class:`~events.errors.InvalidEvent` saying why not
    (:class:`~events.adapters.common.Undated` when it needs ``received_at`` to be dated)."""
    check_depth(raw)  # before the decoder recurses, as the gateway does
    try:
        payload = _json.decode(raw)
    except msgspec.DecodeError as e:
        raise InvalidEvent("not_json", f"not valid JSON: {e}") from e
    # no delivery id: ids come from the payload alone
    return _ADAPTERS[platform](event_name, payload, delivery_id=None, received_at=received_at)


class _Import:
    """Walks the files once, yielding their events and recording what happened."""

    def __init__(self, platform: str, files: list[WebhookFile],
                 received_at: datetime | None = None) -> None:
        self.platform = platform
        self.files = files
        self.received_at = received_at
        #: files with no timestamp of their own, dated by --received-at or their mtime
        self.dated: list[Path] = []
        self.mapped = 0
        self.events = 0
        self.context_skipped = 0
        self.ignored: Counter[str] = Counter()
        self.failures: list[tuple[Path, str]] = []

    def __iter__(self) -> Iterator[Event]:
        progress = progress_printer(len(self.files), "files")
        for n, file in enumerate(self.files, 1):
            try:
                result = self._map(file)
            except OSError as e:
                self.failures.append((file.path, f"cannot read: {e.strerror or e}"))
            except InvalidEvent as e:
                self.failures.append((file.path, f"{e.reason}: {e.detail}"))
            else:
                self.context_skipped += result.context_skipped
                if result.events:
                    self.mapped += 1
                    self.events += len(result.events)
                    yield from result.events
                else:
                    self.ignored[result.ignored or "maps to no event"] += 1
            if n % 100 == 0 or n == len(self.files):
                progress(n)

    def _map(self, file: WebhookFile) -> Mapped:
        raw = file.path.read_bytes()
        try:
            return map_file(self.platform, raw, file.event_name)
        except Undated:
            # as the gateway would: dated by when it was received
            when = self.received_at or datetime.fromtimestamp(file.path.stat().st_mtime, tz=UTC)
            result = map_file(self.platform, raw, file.event_name, when)
            self.dated.append(file.path)
            return result

    def summary(self, report: PublishReport | None) -> dict:
        return {
            "files": len(self.files), "mapped": self.mapped, "ignored": sum(self.ignored.values()),
            "failed": len(self.failures), "events": self.events,
            "dated": len(self.dated),
            "context_skipped": self.context_skipped,
            "dated_by": "--received-at" if self.received_at else "file modification time",
            "dated_files": [str(p) for p in self.dated],
            "published": report.published if report else 0,
            "duplicates": report.duplicates if report else 0,
            "errors": report.errors if report else [],
            "ignored_reasons": dict(self.ignored),
            "failures": [{"path": str(p), "reason": r} for p, r in self.failures],
        }


@click.command("import-webhooks")
@click.option("--platform", type=click.Choice(sorted(_ADAPTERS)), required=True,
              help="Which platform sent the payloads.")
@click.argument("paths", nargs=-1, required=True,
                type=click.Path(exists=True, readable=True, path_type=Path))
@click.option("--event", metavar="NAME",
              help="Event name (X-GitHub-Event / X-Gitlab-Event value) for every file; "
                   "default: the folder holding each file.")
@click.option("--received-at", "received_at", metavar="TIME",
              help="Delivery time (ISO 8601) for payloads with no timestamp of their own "
                   "(GitLab tag pushes, pushes without commits); default: each file's "
                   "modification time.")
@click.option("--dry-run", is_flag=True, help="Print the canonical events as JSON lines; publish nothing.")
@json_option
@click.pass_obj
def import_webhooks_cmd(settings: Settings, platform: str, paths: tuple[Path, ...], event: str | None,
                        received_at: str | None, dry_run: bool, as_json: bool) -> None:
    """Backfill saved webhook payloads (PATH: files or folders) through the webhook mapping.

    A folder laid out as <event>/<name>.json takes each file's event name
    from its folder; --event sets it for single files. GitLab payloads carry
    object_kind or event_name and need neither. Importing the same files
    again adds nothing. Files that fail to map are named on stderr with the
    reason, the rest still go through, and the exit code is 1.

    \b
    Example:
      fleet import-webhooks --platform github saved/github/      # saved/github/issues/1.json ...
      fleet import-webhooks --platform github --event push push-42.json
      fleet import-webhooks --platform gitlab --dry-run hooks/*.json | head
      fleet import-webhooks --platform gitlab --received-at 2024-05-01T12:00:00Z tag-push.json
    """
    if dry_run and as_json:
        raise click.UsageError("--dry-run prints events on stdout; drop --json (the summary goes to stderr)")
    when = None
    if received_at is not None:
        try:
            when = parse_timestamp(received_at)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--received-at") from None
    job = _Import(platform, list(find_files(platform, paths, event)), when)
    if not job.files:
        click.echo(f"error: no .json files in {', '.join(map(str, paths))}", err=True)
        sys.exit(EXIT_PROBLEM)
    report = None
    if dry_run:
        out = sys.stdout.buffer
        for e in job:
            out.write(encode_event(e) + b"\n")
        out.flush()
    else:
        async def work(nc):
            await ensure_stream(nc.jetstream(), sdlc_stream(settings))
            return await publish_events(nc, job, prefix=settings.subject_prefix)

        report = run_with_nats(settings, "fleet-import-webhooks", work)
    _print(job.summary(report), as_json=as_json, dry_run=dry_run)
    if job.failures or (report and report.errors):
        sys.exit(EXIT_PROBLEM)


def _print(summary: dict, *, as_json: bool, dry_run: bool) -> None:
    for failure in summary["failures"]:
        click.echo(f"{failure['path']}: {failure['reason']}", err=True)
    for reason, count in summary["ignored_reasons"].items():
        click.echo(f"ignored {count} file{'s' if count > 1 else ''}: {reason}", err=True)
    if summary["dated"]:
        n = summary["dated"]
        click.echo(f"dated {n} file{'s' if n > 1 else ''} by {summary['dated_by']} "
                   "(no timestamp of their own): " + ", ".join(summary["dated_files"][:20]), err=True)
    if summary["context_skipped"]:
        click.echo(f"left out {summary['context_skipped']} context fact(s) the payloads got wrong "
                   "(a wrong type or a value out of bounds); their events mapped", err=True)
    for error in summary["errors"][:20]:
        click.echo(f"error: {error}", err=True)
    if as_json:
        echo_json(summary)
        return
    keys = ["files", "mapped", "ignored", "failed", "events", "dated"]
    if not dry_run:
        keys += ["published", "duplicates"]
    line = " ".join(f"{k}={summary[k]}" for k in keys)
    if not dry_run:
        line += f" errors={len(summary['errors'])}"
    click.echo(line, err=dry_run)


def register(cli: click.Group) -> None:
    cli.add_command(import_webhooks_cmd)
