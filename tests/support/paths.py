"""Where things are: the repository, and the saved webhook payloads the tests replay."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
ROOT = TESTS.parent
WEBHOOK_FIXTURES = TESTS / "fixtures" / "webhooks"
