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
