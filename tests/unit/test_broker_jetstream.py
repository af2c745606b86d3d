"""The JetStream broker's names: subjects, durables and dedup ids from dramatiq's queue names."""

from __future__ import annotations

import pytest
from dramatiq.message import Message

from events.errors import ConfigError
from workers.broker.layout import dedup_id, durable_name, queue_subject


def test_names_follow_dramatiq_queue_names():
    """Subjects mirror dramatiq's queue names; durables swap dots; dedup ids include queue and retries."""
    assert queue_subject("dramatiq", "default") == "dramatiq.default"
    assert queue_subject("dramatiq", "default.DQ") == "dramatiq.default.DQ"
    assert durable_name("default.DQ") == "default_DQ"
    message = Message(queue_name="default", actor_name="a", args=(), kwargs={}, options={})
    assert dedup_id(message) == f"{message.message_id}:default:0"
    retried = message.copy(queue_name="default.DQ", options={"retries": 2})
    assert dedup_id(retried) == f"{message.message_id}:default.DQ:2"
    with pytest.raises(ConfigError, match="empty subject token"):
        queue_subject("dramatiq", "a..b")
