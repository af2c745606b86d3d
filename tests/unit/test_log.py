"""The immutable log: density, idempotency, immutability, hash chain (real SQLite files)."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from events.chain import RowChain, Tail, rechain
from events.codec import encode_event
from events.errors import NotFound
from events.log import EventLog
from events.logrows import Accepted, Rejected, id_key, now_iso
from tests.support.issues import make_issue
from tests.support.wait import wait_until


def accepted(n: int, event_id: str | None = None) -> Accepted:
    event = make_issue(n, event_id=event_id)
    return Accepted(event.event_id, "issue.opened", "simulate", event.occurred_at.isoformat(),
                    encode_event(event).decode(), "sdlc.simulate.issue.opened")


@pytest.fixture
def log(tmp_path):
    with EventLog(tmp_path / "log.db") as event_log:
        yield event_log


def test_positions_are_dense_and_in_commit_order(log):
    """Each accepted event gets the next position, batch after batch."""
    log.append([accepted(i) for i in range(5)])
    log.append([accepted(i) for i in range(5, 8)])
    positions = [e.position for batch in log.read(1, batch_size=3) for e in batch]
    assert positions == list(range(1, 9))
    assert log.head == 8


def test_duplicates_within_and_across_batches_are_stored_once(log):
    """A repeated event id, in the same batch or a later one, is a no-op."""
    first = log.append([accepted(1), accepted(1), accepted(2)])
    again = log.append([accepted(2), accepted(3)])
    assert (first.appended, first.duplicates) == (2, 1)
    assert (again.appended, again.duplicates) == (1, 1)
    assert log.stats()["count"] == 3


def chain_of(base: Tail, items: list[Accepted]) -> RowChain:
    chain = RowChain(base, now_iso())
    for item in items:
        chain.add(id_key(item.event_id), item)
    return chain


def test_rows_chained_ahead_from_the_right_tail_go_in_as_built(log):
    """Rows built from the log's real tail are appended as they are: same positions, same hashes."""
    log.append([accepted(i) for i in range(3)])
    chain = chain_of(log.chain_tail, [accepted(i) for i in range(3, 6)])
    result = log.append_chained(chain.chained())
    assert (result.appended, result.head, result.head_hash) == (3, 6, chain.tail.hash)
    assert log.chain_tail == chain.tail
    assert log.verify().ok


def test_rows_chained_from_a_stale_tail_are_chained_again(log):
    """Another writer appended after the rows were built: they move after its rows, chain intact."""
    log.append([accepted(0)])
    guess = log.chain_tail
    built = chain_of(guess, [accepted(i) for i in range(10, 13)]).chained()
    log.append([accepted(1), accepted(2)])  # the other writer, e.g. `fleet quarantine retry`
    result = log.append_chained(built)
    assert (result.appended, result.head) == (3, 6)
    assert [e.event_id for e in log.tail(3)] == [accepted(i).event_id for i in range(10, 13)]
    assert log.verify().ok


def test_chained_rows_with_an_id_already_logged_skip_it(log):
    """An id logged since (or before) the rows were built is a duplicate; the rest go in, densely."""
    log.append([accepted(1)])
    chain = chain_of(log.chain_tail, [accepted(2), accepted(1), accepted(2), accepted(3)])
    assert chain.duplicates == 1  # the second accepted(2), within the rows themselves
    result = log.append_chained(chain.chained())
    assert (result.appended, result.duplicates, result.head) == (2, 2, 3)
    assert [e.event_id for e in log.tail(2)] == [accepted(2).event_id, accepted(3).event_id]
    assert log.verify().ok


def test_no_rows_commit_quarantine_and_checkpoint_alone(log):
    """A batch of bad input only: nothing appended, the quarantine row and checkpoint stored."""
    log.append([accepted(1)])
    result = log.append_chained(None, [Rejected(b"{", "not_json", "truncated")], checkpoint=("c", 9))
    assert (result.appended, result.quarantined, result.head) == (0, 1, 1)
    assert result.head_hash == log.chain_tail.hash
    assert log.consumer_checkpoint("c") == 9


def test_rechain_keeps_the_events_and_their_order():
    """Chaining the same rows from another tail moves positions and hashes, nothing else."""
    items = [accepted(i) for i in range(4)]
    built = chain_of(Tail(), items).chained()
    moved = rechain(built, Tail(7, b"\1" * 32), {id_key(items[1].event_id)})
    assert [row[0] for row in moved.rows] == [8, 9, 10]
    assert [row[1:8] for row in moved.rows] == [tuple(items[i]) for i in (0, 2, 3)]
    assert moved.base == Tail(7, b"\1" * 32) and moved.tail.position == 10
    direct = RowChain(Tail(7, b"\1" * 32), built.recorded_at)
    for i in (0, 2, 3):
        direct.add(id_key(items[i].event_id), items[i])
    assert moved.rows == direct.chained().rows  # hashes included


def test_rows_cannot_be_updated_or_deleted_through_sql(log):
    """UPDATE and DELETE are refused by the database itself, not by our code."""
    log.append([accepted(1)])
    raw = sqlite3.connect(log.path)
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        raw.execute("UPDATE events SET payload = '{}' WHERE position = 1")
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        raw.execute("DELETE FROM events")
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        raw.execute("DELETE FROM event_ids")
    with pytest.raises(sqlite3.IntegrityError, match="dense"):
        raw.execute("INSERT INTO events VALUES (5, 'x', 't', 's', NULL, 'o', 'r', '{}', x'00', NULL)")
    raw.close()


def test_verify_detects_a_row_tampered_with_through_a_raw_connection(log):
    """Dropping the trigger and editing a payload breaks the hash chain at that row."""
    log.append([accepted(i) for i in range(10)])
    assert log.verify().ok
    raw = sqlite3.connect(log.path)
    raw.execute("DROP TRIGGER events_no_update")
    raw.execute("UPDATE events SET payload = replace(payload, 'issue 4', 'issue X') WHERE position = 5")
    raw.commit()
    raw.close()
    report = log.verify()
    assert not report.ok
    assert "position 5" in report.problems[0]


def test_two_writers_on_one_file_keep_the_chain_intact(tmp_path):
    """An operator's CLI appending beside the ingest worker cannot fork the chain."""
    a = EventLog(tmp_path / "log.db")
    b = EventLog(tmp_path / "log.db")
    a.append([accepted(1)])
    b.append([accepted(2), accepted(1)])
    a.append([accepted(3)])
    assert a.verify().ok and a.head == 3
    a.close()
    b.close()


def test_quarantine_keeps_raw_bytes_and_reason_with_the_checkpoint(log):
    """Rejected input and the consumer checkpoint commit in the append's transaction."""
    log.append([accepted(1)], [Rejected(b"\xff{oops", "not_json", "bad", "sdlc.x.y", None, 7)],
               checkpoint=("ingest", 7))
    (item,) = log.quarantine_list()
    assert item["reason"] == "not_json" and item["stream_seq"] == 7
    assert log.quarantine_get(item["id"])["raw"] == b"\xff{oops"
    assert log.consumer_checkpoint("ingest") == 7
    log.quarantine_resolve(item["id"], "fixed")
    assert log.quarantine_count("open") == 0


def test_get_by_position_and_event_id(log):
    """Entries are found by position or id; a missing one names the head."""
    log.append([accepted(1, "abc"), accepted(2)])
    assert log.get(1).event_id == "abc"
    assert log.get("abc").position == 1
    with pytest.raises(NotFound, match="head is 2"):
        log.get(99)


def test_id_key_is_injective_across_uuid_and_other_ids():
    """Packed UUIDs never collide with 16-byte text ids."""
    uuid_text = "00000000-0000-4000-8000-000000000001"
    assert len(id_key(uuid_text)) == 16
    assert id_key(uuid_text) == id_key(uuid_text.upper())
    sixteen = "a" * 16
    assert id_key(sixteen) != sixteen.encode() and len(id_key(sixteen)) == 17
    assert id_key("not-a-uuid-but-36-chars-long-xxxxxxx") != id_key(uuid_text)


def test_readonly_open_of_a_missing_log_says_what_to_do(tmp_path):
    """Opening a log that does not exist points at `fleet ingest`."""
    with pytest.raises(NotFound, match="fleet ingest"):
        EventLog(tmp_path / "nope.db", readonly=True)


def test_readonly_open_of_an_uninitialised_log_file_says_what_to_do(tmp_path):
    """A reader that races the writer's first start gets NotFound, not a SQL error."""
    import sqlite3 as raw_sqlite

    raw_sqlite.connect(tmp_path / "log.db").close()  # the file exists, its tables do not yet
    with pytest.raises(NotFound, match="fleet ingest"):
        EventLog(tmp_path / "log.db", readonly=True)


def test_background_checkpoints_copy_the_wal_into_the_database(tmp_path):
    """Automatic checkpoints are off; the writer's checkpoint thread moves the WAL into the file."""
    import time

    db = tmp_path / "log.db"
    with EventLog(db) as log:
        log.append([accepted(i) for i in range(2000)])
        time.sleep(0.2)
        assert db.stat().st_size < 100_000  # nothing checkpoints by itself
        log.start_checkpoints(every_secs=0.02)
        asyncio.run(wait_until(lambda: db.stat().st_size >= 500_000, timeout_secs=10, interval_secs=0.02,
                               message=lambda: f"the database has {db.stat().st_size} bytes"))
        assert db.stat().st_size >= 500_000
        log.append([accepted(i) for i in range(2000, 2100)])
        assert log.head == 2100
