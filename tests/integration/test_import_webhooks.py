"""``fleet import-webhooks``: saved payloads backfilled through the webhook mapping."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess

from events.adapters import map_github
from events.codec import decode_event
from ops.wiring import open_log
from tests.support.cli import fleet_cmd, settings_env
from tests.support.ingest import ingest_until_idle
from tests.support.paths import WEBHOOK_FIXTURES

FIXTURES = WEBHOOK_FIXTURES
GITHUB_EXAMPLES = FIXTURES / "github" / "examples"
GITLAB = FIXTURES / "gitlab"
#: what the GitHub examples map to: 11 files, 2 ignored, 12 events
GITHUB_EVENTS = 12
GITLAB_EVENTS = 7


def run(settings, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(fleet_cmd("import-webhooks", *args), env=settings_env(settings, **env),
                          capture_output=True, timeout=120)


def logged_ids(settings) -> list[str]:
    with open_log(settings, readonly=True) as log:
        return [e.event_id for b in log.read() for e in b]


def dry_run_ids(settings, *args: str) -> list[str]:
    result = run(settings, "--dry-run", *args)
    assert result.returncode == 0, result.stderr.decode()
    return [decode_event(line).event_id for line in result.stdout.splitlines()]


def test_a_folder_of_github_payloads_takes_event_names_from_its_folders(settings):
    """<event>/<name>.json files are mapped under their folder's event and reach the log."""
    result = run(settings, "--platform", "github", str(GITHUB_EXAMPLES), "--json")
    assert result.returncode == 0, result.stderr.decode()
    summary = json.loads(result.stdout)
    assert {k: summary[k] for k in ("files", "mapped", "ignored", "failed", "events", "published")} == {
        "files": 11, "mapped": 9, "ignored": 2, "failed": 0, "events": GITHUB_EVENTS,
        "published": GITHUB_EVENTS}
    assert b"ignored 1 file: issues 'edited' changed neither title nor body" in result.stderr
    asyncio.run(ingest_until_idle(settings))
    assert logged_ids(settings) == dry_run_ids(settings, "--platform", "github", str(GITHUB_EXAMPLES))


def test_gitlab_payloads_need_no_event_name(settings):
    """GitLab files in a folder that is not a hook name are mapped from their object_kind."""
    result = run(settings, "--platform", "gitlab", str(GITLAB), "--json")
    assert result.returncode == 0, result.stderr.decode()
    summary = json.loads(result.stdout)
    assert (summary["mapped"], summary["events"], summary["published"]) == (5, GITLAB_EVENTS, GITLAB_EVENTS)
    asyncio.run(ingest_until_idle(settings))
    assert len(logged_ids(settings)) == GITLAB_EVENTS


def test_event_option_names_the_event_of_single_files(settings, tmp_path):
    """A lone file maps under --event, to the same ids as the same payload in an <event>/ folder."""
    lone = tmp_path / "delivery-42.json"
    shutil.copy(GITHUB_EXAMPLES / "issues" / "opened.payload.json", lone)
    unnamed = run(settings, "--platform", "github", str(lone), "--dry-run")
    assert unnamed.returncode == 0 and unnamed.stdout == b""
    assert f"github '{tmp_path.name}' events are not used".encode() in unnamed.stderr
    named = dry_run_ids(settings, "--platform", "github", "--event", "issues", str(lone))
    in_folder = dry_run_ids(settings, "--platform", "github",
                            str(GITHUB_EXAMPLES / "issues" / "opened.payload.json"))
    assert len(named) == 2 and named == in_folder


def test_dry_run_prints_canonical_events_and_needs_no_server(settings):
    """--dry-run writes the adapter's events as JSON lines and publishes nothing (NATS unreachable)."""
    result = run(settings, "--platform", "github", "--dry-run", str(GITHUB_EXAMPLES / "push"),
                 str(GITHUB_EXAMPLES / "label"), FLEET_NATS_URL="nats://127.0.0.1:1")
    assert result.returncode == 0, result.stderr.decode()
    events = [decode_event(line) for line in result.stdout.splitlines()]
    expected = [e for event, path in (("push", "push/payload.json"), ("label", "label/created.payload.json"))
                for e in map_github(event, json.loads((GITHUB_EXAMPLES / path).read_text())).events]
    assert events == expected
    assert b"files=2 mapped=2 ignored=0 failed=0 events=2" in result.stderr


def test_a_failing_file_is_named_and_the_others_still_go_through(settings, tmp_path):
    """Unreadable-as-JSON and schema-breaking files are named with the reason; good files publish; exit 1."""
    folder = tmp_path / "issues"
    folder.mkdir()
    shutil.copy(GITHUB_EXAMPLES / "issues" / "opened.payload.json", folder / "a-good.json")
    (folder / "b-broken.json").write_bytes(b'{"action": "opened", "issue": {')
    bad = json.loads((GITHUB_EXAMPLES / "issues" / "assigned.payload.json").read_text())
    bad["issue"]["id"] = "forty-two"
    (folder / "c-wrong.json").write_text(json.dumps(bad))
    shutil.copy(GITHUB_EXAMPLES / "issues" / "labeled.payload.json", folder / "d-good.json")
    result = run(settings, "--platform", "github", str(tmp_path), "--json")
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    assert (summary["failed"], summary["mapped"], summary["published"]) == (2, 2, 4)
    err = result.stderr.decode()
    assert f"{folder / 'b-broken.json'}: not_json: not valid JSON: Input data was truncated" in err
    assert f"{folder / 'c-wrong.json'}: schema: Expected `int`, got `str` - at `$.issue.id`" in err
    asyncio.run(ingest_until_idle(settings))
    assert len(logged_ids(settings)) == 4


def test_importing_the_same_files_twice_adds_nothing(settings):
    """A second import is dropped by JetStream's dedup window, and a third on a new stream by the log."""
    first = run(settings, "--platform", "gitlab", str(GITLAB), "--json")
    second = run(settings, "--platform", "gitlab", str(GITLAB), "--json")
    assert json.loads(first.stdout)["published"] == GITLAB_EVENTS
    again = json.loads(second.stdout)
    assert (again["published"], again["duplicates"]) == (0, GITLAB_EVENTS)
    asyncio.run(ingest_until_idle(settings))
    # past the dedup window: a fresh stream with its own consumer, the same log
    later = settings.with_overrides(stream=settings.stream + "_LATER",
                                    subject_prefix=settings.subject_prefix + "l", ingest_durable="ingest-later")
    third = run(later, "--platform", "gitlab", str(GITLAB), "--json")
    assert json.loads(third.stdout)["published"] == GITLAB_EVENTS
    stats = asyncio.run(ingest_until_idle(later))
    assert (stats.appended, stats.duplicates) == (0, GITLAB_EVENTS)
    assert len(logged_ids(settings)) == GITLAB_EVENTS


def test_bad_arguments_are_usage_errors(settings, tmp_path):
    """Unknown platform, missing or absent paths and --dry-run with --json exit 2 with a message."""
    cases = {
        "platform": (["--platform", "gitea", str(GITLAB)], b"'gitea' is not one of"),
        "no platform": ([str(GITLAB)], b"Missing option '--platform'"),
        "missing path": (["--platform", "gitlab", str(tmp_path / "nope.json")], b"nope.json"),
        "no path": (["--platform", "gitlab"], b"Missing argument 'PATHS...'"),
        "dry json": (["--platform", "gitlab", "--dry-run", "--json", str(GITLAB)], b"--dry-run"),
    }
    for name, (args, message) in cases.items():
        result = run(settings, *args)
        assert result.returncode == 2, name
        assert message in result.stderr, (name, result.stderr)


def test_tag_pushes_and_pushes_without_commits_are_dated_by_the_file_or_received_at(settings, tmp_path):
    """Payloads with no timestamp of their own (GitLab tag push, new branch without commits)
    are backfilled like the gateway maps them: dated by --received-at, else by the file's
    modification time, which the output says; the tag is then in the graph."""
    import os

    from projections.read.reader import GraphReader
    from projections.versions.rebuild import rebuild
    from tests.support.payloads import gitlab_branch_created, gitlab_tag_push

    folder = tmp_path / "hooks"
    folder.mkdir()
    (folder / "tag.json").write_text(json.dumps(gitlab_tag_push()))
    (folder / "branch.json").write_text(json.dumps(gitlab_branch_created()))
    mtime = 1_700_000_000  # 2023-11-14T22:13:20Z
    for f in folder.iterdir():
        os.utime(f, (mtime, mtime))
    dry = run(settings, "--platform", "gitlab", "--dry-run", str(folder))
    assert dry.returncode == 0, dry.stderr.decode()
    events = [decode_event(line) for line in dry.stdout.splitlines()]
    assert [e.__struct_config__.tag for e in events] == ["ref.created", "ref.created"]
    assert {e.occurred_at.timestamp() for e in events} == {mtime}
    assert b"dated 2 files by file modification time (no timestamp of their own)" in dry.stderr
    explicit = run(settings, "--platform", "gitlab", "--dry-run", "--received-at",
                   "2024-05-01T12:00:00Z", str(folder / "tag.json"))
    (event,) = [decode_event(line) for line in explicit.stdout.splitlines()]
    assert event.occurred_at.isoformat() == "2024-05-01T12:00:00+00:00"
    assert b"dated 1 file by --received-at" in explicit.stderr
    bad = run(settings, "--platform", "gitlab", "--received-at", "yesterday", str(folder))
    assert bad.returncode == 2 and b"--received-at" in bad.stderr
    result = run(settings, "--platform", "gitlab", "--json", str(folder))
    assert result.returncode == 0, result.stderr.decode()
    summary = json.loads(result.stdout)
    assert (summary["failed"], summary["dated"], summary["published"]) == (0, 2, 2)
    asyncio.run(ingest_until_idle(settings))
    rebuild(settings.log_path, settings.projections_dir)
    with GraphReader(settings.projections_dir) as reader:
        tag = reader.node("ref:gitlab:1:tag:v1.0.0").props
        assert tag["head"] == "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"
        assert reader.node("gitlab:jsmith/example").id == "project:gitlab:1"
        assert reader.node("ref:gitlab:15:branch:feature/empty").props["kind"] == "branch"
