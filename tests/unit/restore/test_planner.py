"""The restore planner on a synthetic archive (see conftest: 5 binlogs x 4 transactions)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from shipper.binlog.index import TransactionIndex
from shipper.errors import RestoreError
from shipper.restore.model import ArchivedBinlog, BackupInfo, iso_us, parse_target
from shipper.restore.planner import PlanRefused, plan_restore
from tests.unit.restore.conftest import HEADER, T0, TX, Archive


def at(seconds: float) -> str:
    return iso_us(round((T0 + seconds) * 1_000_000))


def plan(a: Archive, target: str, **kw: str):  # type: ignore[no-untyped-def]
    return plan_restore(parse_target(target), a.backups, a.binlogs, a.load, **kw)


def test_time_inside_a_shared_second_excludes_by_default(archive: Archive) -> None:
    p = plan(archive, at(33.5))
    assert p.backup.id == "b1"
    assert [s.name for s in p.steps] == ["mysql-bin.000002", "mysql-bin.000003"]
    assert (p.steps[0].start, p.steps[0].stop) == (HEADER + TX, None)
    assert (p.steps[1].start, p.steps[1].stop) == (4, HEADER + TX)
    assert str(p.start) == "mysql-bin.000002:356" and str(p.stop) == "mysql-bin.000003:356"
    assert p.gtid_set == "0-1-9" and p.gtid_position == "0-1-9"
    assert p.last_transaction is not None and p.last_transaction.gtid == "0-1-9"
    assert p.precision.resolution == "second" and p.precision.policy == "exclude"
    assert (p.precision.same_second, p.precision.included) == (2, 0)
    assert "0-1-10 .. 0-1-11" in p.precision.note and "exclude" in p.precision.note


def test_time_inside_a_shared_second_include_policy(archive: Archive) -> None:
    p = plan(archive, at(33.5), ambiguous="include")
    assert str(p.stop) == f"mysql-bin.000003:{HEADER + 3 * TX}"
    assert p.gtid_set == "0-1-11"
    assert (p.precision.same_second, p.precision.included) == (2, 2)
    assert "include" in p.precision.note


def test_time_on_a_whole_second(archive: Archive) -> None:
    # Stamped 33 means committed somewhere in [33, 34): only 'include' counts it as <= 33.000.
    assert plan(archive, at(33)).gtid_set == "0-1-9"
    assert plan(archive, at(33), ambiguous="include").gtid_set == "0-1-11"
    assert plan(archive, at(34)).gtid_set == "0-1-11"


def test_time_with_explicit_offset_equals_utc(archive: Archive) -> None:
    utc = plan(archive, at(45.2))
    t = iso_us(round((T0 + 45.2 + 3600) * 1_000_000)).replace("Z", "+01:00")
    shifted = plan(archive, t)
    assert shifted.stop == utc.stop and shifted.target.time_us == utc.target.time_us


def test_newest_eligible_backup_is_chosen(archive: Archive) -> None:
    p = plan(archive, at(45.2))
    assert p.backup.id == "b2"
    assert [(s.name, s.start, s.stop) for s in p.steps] == [
        ("mysql-bin.000004", HEADER, HEADER + 2 * TX)
    ]
    assert p.gtid_set == "0-1-14"
    assert p.restores_to_us == (T0 + 43) * 1_000_000
    # Only the binlog holding the stop had to be opened.
    assert archive.loaded == ["mysql-bin.000004"]


def test_time_in_the_second_a_binlog_starts(archive: Archive) -> None:
    # mysql-bin.000004 starts at second 40; 'exclude' needs nothing from it, so the backup
    # at its start is not usable and the stop is the end of mysql-bin.000003.
    p = plan(archive, at(40.5))
    assert str(p.stop) == f"mysql-bin.000003:{HEADER + 4 * TX}"
    assert p.backup.id == "b1" and p.gtid_set == "0-1-12"


def test_gtid_target_is_exact(archive: Archive) -> None:
    p = plan(archive, "0-1-10")
    assert str(p.stop) == f"mysql-bin.000003:{HEADER + 2 * TX}"
    assert p.gtid_set == "0-1-10" and p.precision.resolution == "transaction"
    assert p.backup.id == "b1"


def test_position_target(archive: Archive) -> None:
    p = plan(archive, f"mysql-bin.000003:{HEADER + 2 * TX}")
    assert p.gtid_set == "0-1-10"
    # after the last transaction (the ROTATE event, the file's end): the same state
    p = plan(archive, f"mysql-bin.000005:{HEADER + 4 * TX + 40}")
    assert str(p.stop) == f"mysql-bin.000005:{HEADER + 4 * TX}"


def test_position_past_the_end_of_the_archive_is_refused_not_clamped(archive: Archive) -> None:
    with pytest.raises(PlanRefused) as e:
        plan(archive, f"mysql-bin.000005:{HEADER + 4 * TX + 41}")
    assert e.value.reason == "after_window"
    msg = str(e.value)
    assert "mysql-bin.000005:697 is past the end of mysql-bin.000005, which is 696 bytes" in msg
    assert f"its last transaction ends at mysql-bin.000005:{HEADER + 4 * TX}" in msg
    assert "recoverable window:" in msg and "end of mysql-bin.000005" in msg
    # a file newer than the newest archived one
    with pytest.raises(PlanRefused) as e:
        plan(archive, "mysql-bin.000006:4")
    assert e.value.reason == "after_window"
    assert "newer than the archive (newest: mysql-bin.000005)" in str(e.value)
    assert "recoverable window:" in str(e.value)


def test_position_inside_a_transaction_is_refused(archive: Archive) -> None:
    with pytest.raises(PlanRefused) as e:
        plan(archive, "mysql-bin.000003:400")
    assert e.value.reason == "inside_transaction"
    assert "mysql-bin.000003:356 (before it) or mysql-bin.000003:456 (after it)" in str(e.value)


def test_target_at_the_backup_position_replays_nothing(archive: Archive) -> None:
    p = plan(archive, f"mysql-bin.000004:{HEADER}")
    assert p.backup.id == "b2" and p.steps == () and p.gtid_set == "0-1-12"


def test_latest(archive: Archive) -> None:
    p = plan(archive, "latest")
    assert p.backup.id == "b2" and str(p.stop) == f"mysql-bin.000005:{HEADER + 4 * TX}"
    assert [s.name for s in p.steps] == ["mysql-bin.000004", "mysql-bin.000005"]
    assert p.gtid_set == "0-1-20"


def test_latest_ignores_binlogs_still_shipping(archive: Archive) -> None:
    p = plan(archive.with_row("mysql-bin.000005", state="uploaded"), "latest")
    assert str(p.stop) == f"mysql-bin.000004:{HEADER + 4 * TX}"
    assert any("mysql-bin.000005" in n for n in p.notes)


def test_before_oldest_backup_prints_the_window(archive: Archive) -> None:
    with pytest.raises(PlanRefused) as e:
        plan(archive, at(15))
    assert e.value.reason == "before_window"
    msg = str(e.value)
    assert "before the oldest base backup (b1" in msg
    assert f"recoverable window: {at(22)} (backup b1 at mysql-bin.000002:356)" in msg
    assert f"{at(57)} (end of mysql-bin.000005)" in msg
    assert e.value.exit_code == 12


def test_before_oldest_binlog(archive: Archive) -> None:
    with pytest.raises(PlanRefused) as e:
        plan(archive, at(-100))
    assert e.value.reason == "before_window" and "recoverable window" in str(e.value)


def test_after_newest_event_prints_the_window(archive: Archive) -> None:
    with pytest.raises(PlanRefused) as e:
        plan(archive, at(60))
    assert e.value.reason == "after_window"
    assert "after the newest archived event" in str(e.value)
    assert "recoverable window" in str(e.value)
    with pytest.raises(PlanRefused) as e:
        plan(archive, "0-1-99")
    assert e.value.reason == "after_window" and "0-1-20" in str(e.value)


def test_missing_binlog_is_a_gap(archive: Archive) -> None:
    # b2 (file 4) serves this target, so the hole in file 3 does not matter ...
    assert plan(archive.without("mysql-bin.000003"), at(45.2)).backup.id == "b2"
    # ... but it does for one that must start from b1.
    with pytest.raises(PlanRefused) as e:
        plan(archive.without("mysql-bin.000003"), at(36))
    assert e.value.reason == "gap"
    assert "binlog mysql-bin.000003 is missing from the archive" in str(e.value)
    with pytest.raises(PlanRefused) as e:
        gap = archive.with_row("mysql-bin.000003", state="gap", first_ts=None, gtid_end=None)
        gap.backups = gap.backups[:1]
        plan(gap, "latest")
    assert e.value.reason == "gap" and "purged" in str(e.value)


def test_lineage_change_inside_the_range(archive: Archive) -> None:
    for changes in (
        {"gtid_previous": ""},
        {"object_key": "t/mysql/1/2027/01/mysql-bin.000003.lineage-abc.zst.enc"},
        {"server_id": 2},
        {"gtid_previous": "0-7-100"},
    ):
        with pytest.raises(PlanRefused) as e:
            plan(archive.with_row("mysql-bin.000003", **changes), at(36))
        assert e.value.reason == "lineage", changes
        assert "lineage change inside the restore range at mysql-bin.000003" in str(e.value)
    # Outside the range it does not matter: b2 starts after it.
    plan(archive.with_row("mysql-bin.000003", server_id=2), at(45.2))


def test_unverified_binlog_is_refused(archive: Archive) -> None:
    with pytest.raises(PlanRefused) as e:
        plan(archive.with_row("mysql-bin.000002", state="uploaded"), at(36))
    assert e.value.reason == "unverified" and "not verified" in str(e.value)
    assert "binlog-shipper run --once" in str(e.value)
    with pytest.raises(PlanRefused) as e:
        plan(archive.with_row("mysql-bin.000003", state="flagged"), at(36))
    assert e.value.reason == "unverified" and "quarantined" in str(e.value)


def test_no_backup(archive: Archive) -> None:
    with pytest.raises(PlanRefused) as e:
        plan_restore(parse_target("latest"), [], archive.binlogs, archive.load)
    assert e.value.reason == "no_backup" and "backup take" in str(e.value)


@pytest.mark.parametrize("state", ["failed", "deleted"])
def test_backup_that_failed_verification_or_was_deleted_is_never_chosen(
    archive: Archive, state: str
) -> None:
    b1, b2 = archive.backups
    bad = replace(b2, verification=state)
    p = plan_restore(parse_target(at(45.2)), [b1, bad], archive.binlogs, archive.load)
    assert p.backup.id == "b1"  # b2 fits better, but it is bad or gone
    with pytest.raises(PlanRefused) as e:
        plan_restore(parse_target(at(45.2)), [bad], archive.binlogs, archive.load)
    assert e.value.reason == "backup_unusable" and f"b2 ({state})" in str(e.value)
    with pytest.raises(PlanRefused, match="failed verification or was deleted"):
        plan_restore(
            parse_target(at(45.2)), [b1, bad], archive.binlogs, archive.load, backup_id="b2"
        )
    ok = [b1, replace(b2, verification="verified")]
    assert plan_restore(parse_target(at(45.2)), ok, archive.binlogs, archive.load).backup.id == "b2"


def test_backup_verification_comes_from_the_manifest_row() -> None:
    row = {"id": "x", "tool": "mysqldump", "binlog_file": "mysql-bin.000001", "binlog_pos": 4}
    assert BackupInfo.from_row(row).verification == "unverified"
    failed = BackupInfo.from_row({**row, "extra": {"verification": "failed"}})
    assert failed.verification == "failed"


def test_bad_policy(archive: Archive) -> None:
    with pytest.raises(RestoreError, match="ambiguous"):
        plan(archive, "latest", ambiguous="maybe")


def test_plan_json(archive: Archive) -> None:
    doc = plan(archive, at(33.5)).to_dict()
    text = json.dumps(doc)
    back = json.loads(text)
    assert back["stop"] == {"file": "mysql-bin.000003", "position": 356}
    assert back["backup"]["id"] == "b1" and back["gtid_set"] == "0-1-9"
    assert back["restores_to"] == at(31)
    assert back["precision"]["resolution"] == "second"
    assert back["window"]["earliest"] == at(22)
    assert [b["name"] for b in back["binlogs"]] == ["mysql-bin.000002", "mysql-bin.000003"]


RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
TIME_KEYS = ("_at", "time", "restores_to", "earliest", "latest")


def _times(doc: object, path: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            here = f"{path}.{k}"
            if isinstance(v, dict | list):
                out += _times(v, here)
            elif k.endswith(TIME_KEYS):
                out.append((here, v))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _times(v, f"{path}[{i}]")
    return out


def test_plan_json_times_are_rfc3339_utc_strings(archive: Archive) -> None:
    archive.backups[0] = replace(archive.backups[0], started_at=T0 + 20.25, finished_at=T0 + 22.5)
    doc = json.loads(json.dumps(plan(archive, at(33.5)).to_dict()))
    assert doc["backup"]["consistent_at"] == at(22)
    assert doc["backup"]["started_at"] == at(20.25)
    assert doc["backup"]["finished_at"] == at(22.5)
    times = _times(doc)
    assert {p for p, _ in times} >= {
        ".target.time",
        ".backup.consistent_at",
        ".last_transaction.commit_time",
        ".restores_to",
        ".window.earliest",
        ".window.latest",
    }
    for where, v in times:
        assert isinstance(v, str) and RFC3339_UTC.match(v), (where, v)
    # no epoch number hides anywhere else in the document
    floats = [v for v in json.dumps(doc).split() if re.fullmatch(r"\d{9,}\.\d+,?", v)]
    assert floats == []


def test_mysql_microsecond_index_is_exact() -> None:
    uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
    idx = TransactionIndex("mysql")
    base = 1_800_000_000_000_000
    for i in range(5):
        idx.append(200 + i * 50, 250 + i * 50, base + i * 1000 + 7, uuid, i + 1)
    row = ArchivedBinlog(
        name="binlog.000001",
        state="committed",
        server_id=1,
        first_ts=1_800_000_000,
        last_ts=1_800_000_000,
        gtid_previous="",
        gtid_end=f"{uuid}:1-5",
        size=500,
    )
    bk = BackupInfo(
        id="b",
        tool="mysqldump",
        binlog_file="binlog.000001",
        binlog_pos=200,
        gtid_set="",
        consistent_at=1_799_999_999,
    )
    p = plan_restore(parse_target(iso_us(base + 2500)), [bk], [row], lambda r: idx)
    assert p.precision.resolution == "microsecond"
    assert str(p.stop) == "binlog.000001:350" and p.gtid_set == f"{uuid}:1-3"
    p = plan_restore(parse_target(f"{uuid}:1-4"), [bk], [row], lambda r: idx)
    assert str(p.stop) == "binlog.000001:400"


def test_stop_before_a_files_first_transaction_is_the_previous_files_end(
    archive: Archive,
) -> None:
    archive.backups = archive.backups[:1]
    p = plan(archive, f"mysql-bin.000004:{HEADER}")
    assert str(p.stop) == f"mysql-bin.000003:{HEADER + 4 * TX}"
    assert [s.name for s in p.steps] == ["mysql-bin.000002", "mysql-bin.000003"]
    assert p.gtid_set == "0-1-12"


def rotations_inside_one_second() -> tuple[list[ArchivedBinlog], dict[str, TransactionIndex], int]:
    """The issue's scenario: three commits, FLUSH, three, FLUSH, three, all in second S.

    mysql-bin.000001 opened before S and holds two earlier commits; .000002 and .000003 open
    in S; .000004 opens in S too (the FLUSH that closed .000003) and holds no transaction;
    .000005 comes later.
    """
    s = T0 + 100
    plan_of = {  # name -> (first_ts, commit seconds)
        "mysql-bin.000001": (T0, [s - 5, s - 2, s, s, s]),
        "mysql-bin.000002": (s, [s, s, s]),
        "mysql-bin.000003": (s, [s, s, s]),
        "mysql-bin.000004": (s, []),
        "mysql-bin.000005": (s + 5, [s + 6]),
    }
    rows, idxs, seq = [], {}, 0
    for name, (first, commits) in plan_of.items():
        idx = TransactionIndex("mariadb")
        prev = f"0-1-{seq}" if seq else ""
        for j, ts in enumerate(commits):
            seq += 1
            idx.append(HEADER + j * TX, HEADER + (j + 1) * TX, ts * 1_000_000, "0-1", seq)
        idxs[name] = idx
        rows.append(
            ArchivedBinlog(
                name=name,
                state="committed",
                server_id=1,
                first_ts=first,
                last_ts=max(commits) if commits else first,
                gtid_previous=prev,
                gtid_end=f"0-1-{seq}" if seq else "",
                size=HEADER + len(commits) * TX + 40,
                file_status="complete",
            )
        )
    return rows, idxs, s


def test_same_second_report_counts_every_binlog_a_rotation_splits_it_across() -> None:
    rows, idxs, s = rotations_inside_one_second()
    backup = BackupInfo("b0", "mysqldump", "mysql-bin.000001", HEADER, "", consistent_at=T0)
    target = parse_target(iso_us(s * 1_000_000 + 500_000))  # S.500Z

    excl = plan_restore(target, [backup], rows, lambda r: idxs[r.name])
    assert (excl.precision.same_second, excl.precision.included) == (9, 0)
    assert "9 transaction(s) (0-1-3 .. 0-1-11)" in excl.precision.note
    assert str(excl.stop) == f"mysql-bin.000001:{HEADER + 2 * TX}" and excl.gtid_set == "0-1-2"

    incl = plan_restore(target, [backup], rows, lambda r: idxs[r.name], ambiguous="include")
    # the report matches what is applied: all nine, through the end of mysql-bin.000003
    assert (incl.precision.same_second, incl.precision.included) == (9, 9)
    assert "9 transaction(s) (0-1-3 .. 0-1-11)" in incl.precision.note
    assert "no transaction is stamped" not in incl.precision.note
    assert str(incl.stop) == f"mysql-bin.000003:{HEADER + 3 * TX}" and incl.gtid_set == "0-1-11"
    assert [st.name for st in incl.steps] == [f"mysql-bin.00000{i}" for i in (1, 2, 3)]
    assert incl.last_transaction is not None and incl.last_transaction.gtid == "0-1-11"


def test_same_second_report_opens_each_index_once_and_only_those_holding_the_second() -> None:
    rows, idxs, s = rotations_inside_one_second()
    loaded: list[str] = []

    def load(row: ArchivedBinlog) -> TransactionIndex:
        loaded.append(row.name)
        return idxs[row.name]

    backup = BackupInfo("b0", "mysqldump", "mysql-bin.000001", HEADER, "", consistent_at=T0)
    plan_restore(parse_target(iso_us(s * 1_000_000 + 500_000)), [backup], rows, load)
    assert sorted(loaded) == [f"mysql-bin.00000{i}" for i in (1, 2, 3, 4)]


def test_same_second_in_a_binlog_not_verified_yet_is_said_not_counted() -> None:
    rows, idxs, s = rotations_inside_one_second()
    rows = [r if r.name != "mysql-bin.000003" else replace(r, state="uploaded") for r in rows]
    backup = BackupInfo("b0", "mysqldump", "mysql-bin.000001", HEADER, "", consistent_at=T0)
    p = plan_restore(
        parse_target(iso_us(s * 1_000_000 + 500_000)), [backup], rows, lambda r: idxs[r.name]
    )
    assert (p.precision.same_second, p.precision.included) == (6, 0)
    assert any("mysql-bin.000003 (state uploaded)" in n and "not counted" in n for n in p.notes)


def _shape(doc: object) -> object:
    if isinstance(doc, dict):
        return {k: _shape(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_shape(v) for v in doc]
    return None


def test_docs_restore_md_json_example_is_what_plan_prints(archive: Archive) -> None:
    text = (Path(__file__).parents[3] / "docs" / "restore.md").read_text()
    block = text.split("## The plan (`restore plan --to TARGET --json`)", 1)[1]
    documented = json.loads(block.split("```json", 1)[1].split("```", 1)[0])
    real = json.loads(json.dumps(plan(archive, documented["target"]["text"]).to_dict()))
    assert _shape(real) == _shape(documented)
    for where, v in _times(documented):
        assert v is None or RFC3339_UTC.match(str(v)), (where, v)
    assert _times(real) == _times(documented)
