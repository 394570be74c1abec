"""The state manifest: durable settings, forward-only states, terminal states."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from shipper.errors import StateError
from shipper.manifest import Manifest, binlog_sequence
from shipper.manifest_schema import SCHEMA_VERSION


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


# -- schema versions and migrations --

OLD = Path(__file__).parent.parent / "fixtures" / "manifests"


def _copy(tmp_path: Path, fixture: str) -> Path:
    dst = tmp_path / "state" / "manifest.sqlite"
    dst.parent.mkdir()
    shutil.copyfile(OLD / fixture, dst)
    return dst


def _version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def test_previous_release_manifest_is_migrated_and_every_row_reads(tmp_path: Path) -> None:
    """v1-2fc8d4e.sqlite was written by the previous release's own shipper (README.md)."""
    path = _copy(tmp_path, "v1-2fc8d4e.sqlite")
    with sqlite3.connect(path) as db:
        raw = db.execute("SELECT name, lineage, state, object_key, targets FROM binlogs").fetchall()
    assert _version(path) == 0  # the previous release had no schema version
    with Manifest(path) as m:
        rows = m.all()
        assert [(r.name, r.lineage, r.state, r.object_key) for r in rows] == [
            (n, lin, st, key) for n, lin, st, key, _ in raw
        ]
        committed = [r for r in rows if r.state == "committed"]
        assert len(committed) == 3 and [r for r in rows if r.state == "gap"]
        for r in committed:
            assert r.server_uuid is not None and r.sha256 and r.first_ts and r.identity
            assert len(r.targets) == 2
            # the first target's key is the one v1 recorded: a verified placement;
            # the other target has none, so the next pass re-checks it there
            placed = m.placements(r.name)
            assert list(placed) == [r.targets[0]]
            assert placed[r.targets[0]].object_key == r.object_key
            assert placed[r.targets[0]].state == "verified"
            assert [x.name for x in m.unplaced(r.targets[1])][: len(committed)]
        assert m.journal_entries("gap")
        (backup,) = m.backups()
        assert backup["tool"] == "mysqldump" and backup["targets"]
        assert m.counts()["committed"] == 3
    assert _version(path) == SCHEMA_VERSION
    with Manifest(path) as m:  # a second open is a no-op
        assert len(m.all()) == len(raw)


@pytest.mark.parametrize(
    "fixture", ["v0-8490868-no-server-uuid.sqlite", "v0-7c9dfa0-no-lineage.sqlite"]
)
def test_manifest_from_before_server_uuid_is_migrated(tmp_path: Path, fixture: str) -> None:
    """The v1 code raised a raw TypeError reading these rows (no server_uuid column)."""
    path = _copy(tmp_path, fixture)
    with Manifest(path) as m:
        rows = m.all()
        assert [(r.name, r.lineage, r.state) for r in rows] == [
            ("mysql-bin.000001", 0, "committed"),
            ("mysql-bin.000002", 0, "committed"),
            ("mysql-bin.000003", 0, "committed"),
            ("mysql-bin.000004", 0, "gap"),
            ("mysql-bin.000005", 0, "staged"),
        ]
        assert all(r.server_uuid is None for r in rows)
        assert rows[0].object_key == "t1/mysql/1/2026/11/mysql-bin.000001.zst.enc"
        assert rows[0].gtid_end == "0-1-10" and rows[0].targets == (
            "file:///archive/a",
            "file:///archive/b",
        )
        assert m.placements("mysql-bin.000001")["file:///archive/a"].state == "verified"
        # and it keeps working: the pending row advances, lineages start
        m.update("mysql-bin.000005", server_uuid="u-1")
        assert m.get("mysql-bin.000005").server_uuid == "u-1"  # type: ignore[union-attr]
        # the first release recorded no file identity: the first one seen is adopted
        lineage = 0 if "no-lineage" in fixture else 1
        assert m.discover("mysql-bin.000001", 5, identity="other").lineage == lineage
        assert m.backups()[0]["extra"] == {"x": 1}
    assert _version(path) == SCHEMA_VERSION


def test_manifest_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    Manifest(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StateError, match=f"schema version {SCHEMA_VERSION + 1}.*newer"):
        Manifest(path)
    assert _version(path) == SCHEMA_VERSION + 1  # left as it was


def test_damaged_manifest_is_a_state_error_with_guidance(tmp_path: Path) -> None:
    path = _copy(tmp_path, "v1-2fc8d4e.sqlite")
    with Manifest(path) as m:
        assert m.all()
    damage_a_page(path)
    with pytest.raises(StateError) as e:
        Manifest(path)
    msg = str(e.value)
    assert str(path) in msg and "damaged" in msg
    assert "move it aside" in msg and "restore plan --from" in msg


def damage_a_page(path: Path) -> None:
    """Overwrite the middle of the binlogs table's root page with garbage."""
    with sqlite3.connect(path) as db:
        page = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'binlogs'").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    with path.open("r+b") as f:
        f.seek((page - 1) * size + 8)
        f.write(b"\xff" * 64)


def test_manifest_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with Manifest(tmp_path / "state" / "m.sqlite") as m:
            m.discover("b.000001")
            for suffix in ("", "-wal", "-shm"):
                p = tmp_path / "state" / f"m.sqlite{suffix}"
                assert p.stat().st_mode & 0o777 == 0o600, p
        assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
        # a manifest an older release left world-readable is tightened
        (tmp_path / "state" / "m.sqlite").chmod(0o644)
        Manifest(tmp_path / "state" / "m.sqlite").close()
        assert (tmp_path / "state" / "m.sqlite").stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


# -- placements --


def test_placements_per_target_and_the_target_view(tmp_path: Path) -> None:
    m = Manifest(tmp_path / "m.sqlite")
    m.discover("bin.000001", 10, identity="a")
    m.place("bin.000001", "file:///a", key="k", version="1", envelope_size=99)
    m.place("bin.000001", "file:///b", key=None, error="bucket missing")
    assert m.placements("bin.000001")["file:///b"].state == "failed"
    # a failure never replaces a verified placement
    m.place("bin.000001", "file:///a", key=None, error="later glitch")
    assert m.placements("bin.000001")["file:///a"].state == "verified"
    m.place("bin.000001", "file:///b", key="k.lineage-0123456789ab", version="7")
    m.advance("bin.000001", "committed", object_key="k", targets=["file:///a", "file:///b"])
    assert m.get("bin.000001").object_key == "k"  # type: ignore[union-attr]
    assert m.get("bin.000001", target="file:///b").object_key == "k.lineage-0123456789ab"  # type: ignore[union-attr]
    assert [r.object_key for r in m.all(target="file:///b")] == ["k.lineage-0123456789ab"]
    # a target with no placement: the row's own key is the best guess
    assert [r.object_key for r in m.all(target="gs://other")] == ["k"]
    assert [r.name for r in m.unplaced("file:///c")] == ["bin.000001"]
    assert m.unplaced("file:///b") == []
    # placements belong to a lineage: a new file under the name starts with none
    m.discover("bin.000001", 12, identity="b")
    assert m.placements("bin.000001") == {}
    assert set(m.placements("bin.000001", lineage=0)) == {"file:///a", "file:///b"}
    assert set(m.all_placements()) == {("bin.000001", 0)}
