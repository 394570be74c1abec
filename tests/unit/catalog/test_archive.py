"""The archive scan catalog: the same plan as the rows it was written from, a cache that
makes a second plan one listing, and the planner's refusals still reached."""

from __future__ import annotations

import io
import json
import os
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from shipper import objects
from shipper.catalog.archive import ArchiveCatalog
from shipper.errors import IntegrityError
from shipper.keys.local import LocalKeyring
from shipper.restore.model import ArchivedBinlog, parse_target
from shipper.restore.planner import PlanRefused, plan_restore
from shipper.storage.memory import MemoryBackend
from tests.synthetic_archive import put_backup, put_binlog
from tests.unit.restore.conftest import Archive, build

TENANT = "t"
TARGETS = ("latest", "0-1-9", "mysql-bin.000003:556", "2027-01-15T08:00:34Z")


def _store(name: str) -> MemoryBackend:
    return MemoryBackend(f"catalog-{name}-{os.getpid()}")


def _write(store: MemoryBackend, kr: LocalKeyring, a: Archive, **skip: bool) -> dict[str, str]:
    keys = {}
    for row in a.binlogs:
        keys[row.name] = put_binlog(store, [kr], row, a.indexes[row.name], tenant=TENANT)
    for b in a.backups:
        put_backup(store, [kr], b, tenant=TENANT, server_id=1)
    return keys


@pytest.fixture()
def kr(tmp_path: Path) -> LocalKeyring:
    return LocalKeyring(os.urandom(32), tmp_path / "keyring")


def _plan(
    rows: list[ArchivedBinlog], a: Archive, target: str, cat: ArchiveCatalog
) -> dict[str, Any]:
    return plan_restore(parse_target(target), cat.backups(TENANT, 1), rows, a.load).to_dict()


def test_scan_gives_the_rows_and_the_plans_the_shipper_wrote(kr: LocalKeyring) -> None:
    a = build()
    store = _store("same")
    keys = _write(store, kr, a)
    cat = ArchiveCatalog(store, [kr])
    assert cat.servers(TENANT) == [1]
    got = cat.binlogs(TENANT, 1)
    assert [b.name for b in got] == [b.name for b in a.binlogs]
    for mine, theirs in zip(got, a.binlogs, strict=True):
        assert mine.index_key == objects.index_key(keys[mine.name])
        for f in ("state", "server_id", "first_ts", "last_ts", "gtid_previous", "gtid_end"):
            assert getattr(mine, f) == getattr(theirs, f), (mine.name, f)
        assert mine.object_key == keys[mine.name] and mine.size == theirs.size
    backups = cat.backups(TENANT, 1)
    assert [(b.id, b.position, b.gtid_set, b.consistent_at) for b in backups] == [
        (b.id, b.position, b.gtid_set, b.consistent_at) for b in a.backups
    ]
    assert {b.verification for b in backups} == {"verified"}
    for target in TARGETS:
        want = plan_restore(parse_target(target), a.backups, a.binlogs, a.load).to_dict()
        mine = _plan(got, a, target, cat)
        for k in ("start", "stop", "gtid_set", "precision", "window", "notes"):
            assert mine[k] == want[k], (target, k)
        assert [s["name"] for s in mine["binlogs"]] == [s["name"] for s in want["binlogs"]]
    # Everything the plan can name was seen in this listing: no stat needed.
    assert all(cat.confirms(k) for k in keys.values())
    assert all(cat.confirms(objects.index_key(k)) for k in keys.values())
    assert all(cat.confirms(b.object_key or "") for b in backups)
    assert not cat.confirms(f"{TENANT}/mysql/1/2027/01/mysql-bin.000099.zst.enc")


def test_second_scan_is_one_listing_from_a_0600_cache(kr: LocalKeyring, tmp_path: Path) -> None:
    a = build()
    store = _store("cache")
    _write(store, kr, a)
    first = ArchiveCatalog(store, [kr], cache_dir=tmp_path / "cache")
    rows1, backups1 = first.binlogs(TENANT, 1), first.backups(TENANT, 1)
    assert first.requests == {"list": 1, "header": 5, "record": 2}
    (cache,) = (tmp_path / "cache").iterdir()
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    second = ArchiveCatalog(store, [kr], cache_dir=tmp_path / "cache")
    assert second.binlogs(TENANT, 1) == rows1 and second.backups(TENANT, 1) == backups1
    assert second.requests == {"list": 1}


def test_cache_never_hides_an_object_gone_from_the_archive(
    kr: LocalKeyring, tmp_path: Path
) -> None:
    a = build()
    store = _store("gone")
    keys = _write(store, kr, a)
    ArchiveCatalog(store, [kr], cache_dir=tmp_path).binlogs(TENANT, 1)
    store.delete(keys["mysql-bin.000003"])
    store.delete(objects.index_key(keys["mysql-bin.000003"]))
    cat = ArchiveCatalog(store, [kr], cache_dir=tmp_path)
    rows = cat.binlogs(TENANT, 1)
    assert "mysql-bin.000003" not in {b.name for b in rows}
    with pytest.raises(PlanRefused) as e:
        plan_restore(parse_target("latest"), cat.backups(TENANT, 1)[:1], rows, a.load)
    assert e.value.reason == "gap" and "mysql-bin.000003 is missing" in str(e.value)
    assert (
        json.loads(next(tmp_path.iterdir()).read_text())["binlogs"].get(keys["mysql-bin.000003"])
        is None
    )


def test_object_without_its_index_is_not_verified(kr: LocalKeyring) -> None:
    a = build()
    store = _store("noindex")
    keys = _write(store, kr, a)
    store.delete(objects.index_key(keys["mysql-bin.000003"]))
    cat = ArchiveCatalog(store, [kr])
    rows = cat.binlogs(TENANT, 1)
    row = next(b for b in rows if b.name == "mysql-bin.000003")
    assert row.state == "uploaded" and row.index_key is None
    with pytest.raises(PlanRefused) as e:
        plan_restore(parse_target("latest"), cat.backups(TENANT, 1)[:1], rows, a.load)
    assert e.value.reason == "unverified" and "mysql-bin.000003" in str(e.value)


def test_quarantined_object_is_flagged_and_refused(kr: LocalKeyring) -> None:
    a = build()
    store = _store("quarantine")
    row3 = next(b for b in a.binlogs if b.name == "mysql-bin.000003")
    for row in a.binlogs:
        if row is row3:
            qkey = objects.quarantine_key(TENANT, 1, row.name, "ab" * 32)
            put_binlog(
                store, [kr], row, a.indexes[row.name], tenant=TENANT, key=qkey, with_index=False
            )
        else:
            put_binlog(store, [kr], row, a.indexes[row.name], tenant=TENANT)
    put_backup(store, [kr], a.backups[0], tenant=TENANT, server_id=1)
    cat = ArchiveCatalog(store, [kr])
    rows = cat.binlogs(TENANT, 1)
    assert next(b for b in rows if b.name == row3.name).state == "flagged"
    with pytest.raises(PlanRefused) as e:
        plan_restore(parse_target("latest"), cat.backups(TENANT, 1), rows, a.load)
    assert e.value.reason == "unverified" and "quarantined" in str(e.value)


def test_lineage_copy_wins_its_name_and_is_refused_inside_the_range(kr: LocalKeyring) -> None:
    a = build()
    store = _store("lineage")
    keys = _write(store, kr, a)
    row4 = next(b for b in a.binlogs if b.name == "mysql-bin.000004")
    other = replace(row4, gtid_previous="0-1-100", gtid_end="0-1-104", size=(row4.size or 0) + 1)
    lkey = objects.lineage_key(keys[row4.name], "cd" * 32)
    put_binlog(store, [kr], other, a.indexes[row4.name], tenant=TENANT, key=lkey)
    cat = ArchiveCatalog(store, [kr])
    rows = cat.binlogs(TENANT, 1)
    same = [b for b in rows if b.name == row4.name]
    assert [b.object_key for b in same] == [keys[row4.name], lkey]  # the later copy last
    with pytest.raises(PlanRefused) as e:
        plan_restore(parse_target("latest"), cat.backups(TENANT, 1)[:1], rows, a.load)
    assert e.value.reason == "lineage" and "lineage key" in str(e.value)


def test_an_object_copied_to_another_binlogs_key_is_not_believed(kr: LocalKeyring) -> None:
    a = build()
    store = _store("copied")
    keys = _write(store, kr, a)
    src = keys["mysql-bin.000002"]
    dst = src.replace("mysql-bin.000002", "mysql-bin.000006")
    with store.open(src) as f:
        body = f.read()
    store.put(dst, io.BytesIO(body), size=len(body), metadata={})
    with pytest.raises(IntegrityError) as e:
        ArchiveCatalog(store, [kr]).binlogs(TENANT, 1)
    assert dst in str(e.value) and "copied or renamed" in str(e.value)


def test_deleted_backups_are_not_offered_but_listed(kr: LocalKeyring) -> None:
    a = build()
    store = _store("deleted")
    _write(store, kr, a)
    cat = ArchiveCatalog(store, [kr])
    rec = next(r for r in cat.records(TENANT, 1) if r.id == "b2")
    from shipper import records
    from shipper.records import Verification

    records.write_record(
        store, [kr], rec.next_revision(Verification("deleted", 1.0, "test")), tenant_prefix=TENANT
    )
    cat = ArchiveCatalog(store, [kr])
    assert [b.id for b in cat.backups(TENANT, 1)] == ["b1"]
    assert {r.id: r.verification.state for r in cat.records(TENANT, 1)} == {
        "b1": "verified",
        "b2": "deleted",
    }


def test_time_range_drops_only_binlogs_wholly_outside_it(kr: LocalKeyring) -> None:
    a = build()
    store = _store("range")
    _write(store, kr, a)
    cat = ArchiveCatalog(store, [kr])
    t2, t4 = a.binlogs[1], a.binlogs[3]
    assert t2.last_ts is not None and t4.first_ts is not None
    got = cat.binlogs(TENANT, 1, since=t2.last_ts, until=t4.first_ts)
    assert [b.name for b in got] == ["mysql-bin.000002", "mysql-bin.000003", "mysql-bin.000004"]


def test_a_damaged_cache_is_read_around_and_rewritten(kr: LocalKeyring, tmp_path: Path) -> None:
    a = build()
    store = _store("damaged")
    _write(store, kr, a)
    want = ArchiveCatalog(store, [kr], cache_dir=tmp_path).binlogs(TENANT, 1)
    (cache,) = tmp_path.iterdir()
    doc = json.loads(cache.read_text())
    first = next(iter(doc["binlogs"]))
    doc["binlogs"][first]["doc"] = {"name": "mysql-bin.000042"}  # not a whole entry
    doc["records"] = ["not", "a", "table"]
    cache.write_text(json.dumps(doc))
    cat = ArchiveCatalog(store, [kr], cache_dir=tmp_path)
    assert cat.binlogs(TENANT, 1) == want and len(cat.backups(TENANT, 1)) == 2
    assert cat.requests == {"list": 1, "header": 1, "record": 2}
    cache.write_text("{ truncated")
    assert ArchiveCatalog(store, [kr], cache_dir=tmp_path).binlogs(TENANT, 1) == want
    again = ArchiveCatalog(store, [kr], cache_dir=tmp_path)  # the cache was rewritten whole
    assert again.binlogs(TENANT, 1) == want and again.requests == {"list": 1}


def test_an_unwritable_cache_dir_only_costs_the_cache(kr: LocalKeyring, tmp_path: Path) -> None:
    a = build()
    store = _store("unwritable")
    _write(store, kr, a)
    blocker = tmp_path / "file"
    blocker.write_text("")
    cat = ArchiveCatalog(store, [kr], cache_dir=blocker / "cache")  # a dir under a file
    assert [b.name for b in cat.binlogs(TENANT, 1)] == [b.name for b in a.binlogs]


def test_objects_of_the_previous_release_are_planned_from(kr: LocalKeyring) -> None:
    a = build()
    store = _store("v1")
    for row in a.binlogs:  # an archive written before layout-2 contexts
        put_binlog(store, [kr], row, a.indexes[row.name], tenant=TENANT, v1=True)
    for b in a.backups:
        put_backup(store, [kr], b, tenant=TENANT, server_id=1)
    cat = ArchiveCatalog(store, [kr])
    rows = cat.binlogs(TENANT, 1)
    assert [b.state for b in rows] == ["committed"] * 5
    want = plan_restore(parse_target("latest"), a.backups, a.binlogs, a.load).to_dict()
    assert _plan(rows, a, "latest", cat)["stop"] == want["stop"]
