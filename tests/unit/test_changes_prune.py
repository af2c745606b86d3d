"""Outbox pruning reads the publisher's watermark file: a torn read allows no pruning."""

from __future__ import annotations

from projections.versions.lanes import WATERMARK_FILE, prunable, write_watermark


def test_a_torn_watermark_read_never_lets_more_be_pruned(tmp_path):
    """A watermark line whose seq and message id disagree (a read torn between two in-place
    writes) allows no pruning at all."""
    write_watermark(tmp_path, 200, "graph@v1:200")
    assert prunable(tmp_path) == 200
    (tmp_path / WATERMARK_FILE).write_text('{"seq": 299, "msg_id": "graph@v1:199", "at": 1.0}\n')
    assert prunable(tmp_path) == 0
    (tmp_path / WATERMARK_FILE).write_text('{"seq": 2')
    assert prunable(tmp_path) == 0
