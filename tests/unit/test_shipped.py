"""Shipped rows: a replica's log takes them as they are, only when each one chains."""

from __future__ import annotations

import msgspec
import pytest

from events.errors import ChainBroken, InvalidEvent
from events.log import EventLog
from events.shipped import decode_row, encode_row
from tests.support.projection import simulated_log


def shipped(path, start=1, stop=None):
    with EventLog(path, readonly=True) as event_log:
        return [decode_row(encode_row(row)) for batch in event_log.rows(start, to_position=stop)
                for row in batch]


def test_a_copy_from_shipped_rows_is_the_same_log(tmp_path):
    """Appended in pieces, the shipped rows make a log with the same rows and the same head hash."""
    primary, replica = tmp_path / "p.db", tmp_path / "r.db"
    simulated_log(primary, 300, seed=4)
    rows = shipped(primary)
    with EventLog(replica) as copy:
        for i in range(0, 300, 70):
            result = copy.append_shipped(rows[i:i + 70])
        assert result.head == 300 and copy.verify().problems == ()
        copied = [r for batch in copy.rows() for r in batch]
        tail = copy.chain_tail
    with EventLog(primary, readonly=True) as original:
        assert copied == [r for batch in original.rows() for r in batch]
        assert tail == original.chain_tail


def test_a_row_whose_hash_does_not_chain_is_refused_and_nothing_is_appended(tmp_path):
    """A changed payload (or recorded_at) breaks the hash: the whole batch is refused, saying where."""
    primary, replica = tmp_path / "p.db", tmp_path / "r.db"
    simulated_log(primary, 20)
    rows = shipped(primary)
    tampered = msgspec.structs.replace(rows[12], payload=rows[12].payload.replace("}", ', "x": 1}', 1))
    with EventLog(replica) as copy:
        copy.append_shipped(rows[:10])
        with pytest.raises(ChainBroken) as e:
            copy.append_shipped([*rows[10:12], tampered, *rows[13:]])
        assert copy.head == 10
    message = str(e.value)
    assert f"shipped row at position 13 (event {rows[12].event_id}) carries hash" in message
    assert "refused, nothing appended" in message


def test_a_skipped_or_repeated_position_is_refused(tmp_path):
    """Rows must continue the tail: a gap or a row already there is named."""
    primary, replica = tmp_path / "p.db", tmp_path / "r.db"
    simulated_log(primary, 10)
    rows = shipped(primary)
    with EventLog(replica) as copy:
        copy.append_shipped(rows[:5])
        with pytest.raises(ChainBroken, match="position 7 .* does not follow the log's tail at position 5"):
            copy.append_shipped(rows[6:])
        with pytest.raises(ChainBroken, match="position 5 .* does not follow the log's tail at position 5"):
            copy.append_shipped(rows[4:])
        assert copy.head == 5


def test_a_message_that_is_not_a_row_is_named(tmp_path):
    """Anything else on the LOG subject is InvalidEvent('bad_row')."""
    for data in (b"{}", b"not json", b'{"position": 1}'):
        with pytest.raises(InvalidEvent) as e:
            decode_row(data)
        assert e.value.reason == "bad_row"
