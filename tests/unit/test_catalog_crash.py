"""A promotion cut short by a crash leaves the version promotable, never 'rolled back from'."""

from __future__ import annotations

import pytest

from projections.versions import catalog
from projections.versions.catalog import READY, RETIRED, Versions


class Crash(Exception):
    """The process dies here."""


def test_a_crash_before_the_pointer_switch_leaves_the_version_ready(tmp_path, monkeypatch):
    """Killed between its bookkeeping and the ACTIVE switch, the first version is still ready
    (a restarted projector promotes it), not retired with nothing active."""
    versions = Versions(tmp_path, "graph")
    versions.create(3)
    versions.mark_ready(3)

    real_write = catalog.write_atomic

    def crash_at_the_switch(path, text):
        if path.name == catalog.ACTIVE_FILE:
            raise Crash
        real_write(path, text)

    with monkeypatch.context() as m:
        m.setattr(catalog, "write_atomic", crash_at_the_switch)
        with pytest.raises(Crash):
            versions.promote(3)
    assert versions.active() is None
    assert versions.info(3).state == READY
    versions.promote(3)
    assert versions.active() == 3


def test_a_crash_after_the_switch_leaves_the_new_and_the_old_where_the_pointer_says(tmp_path, monkeypatch):
    """Killed after the switch, the pointer decides: the new version is active, the old retired."""
    versions = Versions(tmp_path, "graph")
    for v in (2, 3):
        versions.create(v)
        versions.mark_ready(v)
    versions.promote(2)
    real_stamp = catalog.stamp_switch

    def crash(root):
        real_stamp(root)
        raise Crash

    with monkeypatch.context() as m:
        m.setattr(catalog, "stamp_switch", crash)
        with pytest.raises(Crash):
            versions.promote(3)
    assert versions.active() == 3
    assert versions.info(3).state == "active" and versions.info(2).state == RETIRED
