"""Logs to project: hand-made events, a small organisation, simulated runs; applying a log
to a store, and reading a version's unsynced marker."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable

from events.codec import encode_event
from events.log import EventLog
from events.logrows import Accepted
from events.types import EVENT_TYPES, Actor, Commit, Event
from projections.fold.applier import Applier, plan_rows
from projections.store import env as lmdbenv
from projections.store.graph import GraphStore

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def accepted(event: Event) -> Accepted:
    """The log row of a valid event."""
    return Accepted(event.event_id, event.__struct_config__.tag, event.source,
                    event.occurred_at.isoformat(), encode_event(event).decode())


def append(log_path: Path, events: Iterable[Event | Accepted]) -> int:
    """Append events (or raw rows) to the log at ``log_path``; returns the head."""
    with EventLog(log_path, sync="normal") as event_log:
        rows = [e if isinstance(e, Accepted) else accepted(e) for e in events]
        return event_log.append(rows).head


def simulated_log(log_path: Path, n: int, *, seed: int = 0, start: int = 0) -> int:
    """Append events ``start .. n-1`` of ``simulate(n, seed)`` to the log."""
    from ops.simulate import simulate

    events = list(simulate(n, seed=seed))[start:]
    head = 0
    for i in range(0, len(events), 5000):
        head = append(log_path, events[i : i + 5000])
    return head


_counter = iter(range(1, 1 << 30))


def ev(tag: str, **fields) -> Event:
    """A canonical event of type ``tag`` with a fresh id and increasing time."""
    n = next(_counter)
    fields.setdefault("source", "gitlab")
    return EVENT_TYPES[tag](event_id=str(uuid.UUID(int=n)), occurred_at=T0 + timedelta(seconds=n),
                            **fields)


def garbage(n: int, payload: str = "{not json") -> Accepted:
    """A log row whose payload cannot be decoded (a poison event)."""
    return Accepted(f"poison-{n}", "issue.opened", "gitlab", T0.isoformat(), payload)


def small_project() -> list[Event]:
    """A little organisation: a group, a project, users, labels, issues, an MR, pushes."""
    return [
        ev("user.created", user_id=1, username="ann"),
        ev("user.created", user_id=2, username="bob"),
        ev("group.created", group_id=1, name="Platform", path="platform"),
        ev("project.created", project_id=7, name="API", path="api", group_id=1, default_branch="main"),
        ev("label.created", label_id=1, name="bug", project_id=7),
        ev("label.created", label_id=2, name="ux", project_id=7),
        ev("issue.opened", issue_id=100, project_id=7, iid=1, title="Crash on save", author_id=1,
           label_ids=[1]),
        ev("issue.opened", issue_id=101, project_id=7, iid=2, title="Slow list", author_id=2,
           label_ids=[1, 2]),
        ev("issue.opened", issue_id=102, project_id=7, iid=3, title="Typo", author_id=2),
        ev("issue.linked", issue_id=100, project_id=7, target_issue_id=101, link_type="blocks"),
        ev("issue.linked", issue_id=101, project_id=7, target_issue_id=102, link_type="blocks"),
        ev("merge_request.opened", merge_request_id=500, project_id=7, iid=1, title="Fix save",
           author_id=1, source_branch="fix-save", target_branch="main",
           description="Closes #1, see platform/api#3"),
        ev("commits.pushed", project_id=7, ref="refs/heads/main", after="b" * 40,
           commits=[Commit(sha="a" * 40, message="Speed up list\n\nFixes #2", author_id=2)],
           actor=Actor(id=2, username="bob")),
        ev("issue.closed", issue_id=101, project_id=7),
        ev("comment.created", comment_id=9, project_id=7, target_type="issue", target_id=102,
           author_id=1, body="dup of platform/api#1?"),
    ]


def apply_log(store: GraphStore, log_path, batch: int = 50) -> None:
    """Apply the log's entries after the store's checkpoint, precisely and with an outbox."""
    applier = Applier(store, precise=True, strict=False, outbox=True)
    with EventLog(log_path, readonly=True) as event_log:
        for rows in event_log.read_payloads(store.checkpoint() + 1, batch_size=batch):
            applier.apply(plan_rows(rows))


def unsynced_marker(path) -> dict | None:
    """The version's marker of commits not yet fsynced (deferred sync), or None."""
    try:
        return json.loads((path / lmdbenv.UNSYNCED).read_text())
    except FileNotFoundError:
        return None
