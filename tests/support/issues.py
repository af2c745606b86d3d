"""Sample issue.opened events, numbered."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from events.types import IssueOpened


def make_issue(n: int, *, project_id: int = 1, event_id: str | None = None) -> IssueOpened:
    """A valid issue.opened event number ``n``."""
    return IssueOpened(
        event_id=event_id or str(uuid.UUID(int=n + 1, version=4)),
        source="simulate",
        occurred_at=datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(seconds=n),
        issue_id=1000 + n,
        project_id=project_id,
        iid=n + 1,
        title=f"issue {n}",
        author_id=7,
    )
