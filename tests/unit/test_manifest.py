"""The state manifest: durable settings, forward-only states, terminal states."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipper.errors import StateError
from shipper.manifest import Manifest, binlog_sequence


def test_wal_and_full_sync(tmp_path: Path) -> None:
    m = Manifest(tmp_path / "m.sqlite")
    assert m._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert m._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_states_only_move_forward(tmp_path: Path) -> None:
    m = Manifest(tmp_path / "m.sqlite")
    m.discover("mysql-bin.000007", 100)
    assert m.get("mysql-bin.000007").sequence == 7  # type: ignore[union-attr]
    m.advance("mysql-bin.000007", "staged")
    m.advance("mysql-bin.000007", "uploaded", object_key="k", targets=["file:///a"])
    with pytest.raises(StateError, match="only move forward"):
        m.advance("mysql-bin.000007", "staged")
    m.advance("mysql-bin.000007", "committed")
    row = m.get("mysql-bin.000007")
    assert row is not None and row.state == "committed" and row.committed_at
    assert row.targets == ("file:///a",)
    with pytest.raises(StateError, match="already committed"):
        m.advance("mysql-bin.000007", "gap")
    # discover again is a no-op, it does not reset the row
    m.discover("mysql-bin.000007", 100)
    assert m.get("mysql-bin.000007").state == "committed"  # type: ignore[union-attr]


def test_state_survives_reopen(tmp_path: Path) -> None:
    with Manifest(tmp_path / "m.sqlite") as m:
        m.discover("b.000001")
        m.advance("b.000001", "committed")
        m.journal("gap", "b.000002", {"reason": "purged"})
    with Manifest(tmp_path / "m.sqlite") as m:
        assert m.counts()["committed"] == 1
        assert m.journal_entries("gap")[0]["detail"] == {"reason": "purged"}
        assert m.pending() == []


def test_unwritable_location_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StateError, match="cannot be opened"):
        Manifest(blocker / "sub" / "m.sqlite")


def test_sequence_needs_numeric_suffix() -> None:
    assert binlog_sequence("mysql-bin.000042") == 42
    with pytest.raises(StateError):
        binlog_sequence("mysql-bin.index")


def test_a_different_file_under_a_known_name_starts_a_new_lineage(tmp_path: Path) -> None:
    m = Manifest(tmp_path / "m.sqlite")
    m.discover("bin.000001", 10, identity="aaa")
    m.advance("bin.000001", "committed", object_key="k0")
    assert m.discover("bin.000001", 10, identity="aaa").lineage == 0  # same file: no change
    assert m.discover("bin.000001", 10, identity=None).lineage == 0  # unknown: no change
    row = m.discover("bin.000001", 12, identity="bbb")
    assert (row.lineage, row.state, row.identity) == (1, "discovered", "bbb")
    m.advance("bin.000001", "committed", object_key="k1")  # moves the newest lineage only
    rows = m.all()
    assert [(r.lineage, r.object_key) for r in rows] == [(0, "k0"), (1, "k1")]
    assert m.journal_entries("lineage_change")[0]["detail"]["new_identity"] == "bbb"
    # a name recorded as a gap that shows up again is a new file too
    m.discover("bin.000002")
    m.advance("bin.000002", "gap")
    assert m.discover("bin.000002", 5, identity="ccc").lineage == 1
