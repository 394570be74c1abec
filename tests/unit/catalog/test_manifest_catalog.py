"""The host manifest and an archive scan give the same plan; on the host too, an object
the plan names but the archive no longer holds stops the restore before it starts."""

from __future__ import annotations

import json

import pytest

from shipper import objects
from shipper.catalog.manifest import ManifestCatalog
from shipper.cli import main as cli
from shipper.manifest import Manifest
from shipper.storage import open_backend
from tests.unit.catalog.conftest import Fresh

TARGETS = ("latest", "0-1-9", "mysql-bin.000003:556", "2027-01-15T08:00:34Z")


def _host_manifest(fresh: Fresh) -> None:
    """What the shipping host's manifest says about the archive ``fresh`` holds."""
    with Manifest(fresh.state / "manifest.sqlite") as m:
        for row in fresh.archive.binlogs:
            m.discover(row.name, row.size)
            m.advance(
                row.name,
                "committed",
                object_key=fresh.keys[row.name],
                server_id=row.server_id,
                first_ts=row.first_ts,
                last_ts=row.last_ts,
                gtid_previous=row.gtid_previous,
                gtid_end=row.gtid_end,
                file_status="complete",
            )
        for b in fresh.archive.backups:
            m.add_backup(
                id=b.id,
                tool=b.tool,
                started_at=b.consistent_at,
                finished_at=b.consistent_at,
                binlog_file=b.binlog_file,
                binlog_pos=b.binlog_pos,
                gtid_set=b.gtid_set,
                object_key=objects.backup_key("t", 1, b.id, b.tool),
                targets=[fresh.url],
                extra={"consistent_at": b.consistent_at, "server_id": 1},
            )


def _plan(
    fresh: Fresh, target: str, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli(["restore", "plan", "--to", target, "--state-dir", str(fresh.state), "--json", *extra])
    out, err = capsys.readouterr()
    return rc, out, err


def test_manifest_and_archive_give_the_same_plan(
    fresh: Fresh, capsys: pytest.CaptureFixture[str]
) -> None:
    _host_manifest(fresh)
    cat = ManifestCatalog(fresh.state / "manifest.sqlite")
    assert cat.servers("t") == [1] and not cat.confirms(fresh.keys["mysql-bin.000001"])
    for target in TARGETS:
        rc, host, err = _plan(fresh, target, capsys)
        assert rc == 0 and "no state manifest" not in err, err
        rc, dr, err = _plan(fresh, target, capsys, "--from", fresh.url, "--catalog", "archive")
        assert rc == 0 and "no state manifest" not in err, err
        # size and sha256 differ on purpose: the manifest rows here carry none of them
        a, b = json.loads(host), json.loads(dr)
        for s in (*a["binlogs"], *b["binlogs"]):
            s.pop("size"), s.pop("sha256")
        assert a == b, target


def test_an_index_gone_from_the_archive_stops_the_plan_on_the_host(
    fresh: Fresh, capsys: pytest.CaptureFixture[str]
) -> None:
    _host_manifest(fresh)
    gone = objects.index_key(fresh.keys["mysql-bin.000004"])
    open_backend(fresh.url).delete(gone)
    rc, _, err = _plan(fresh, "0-1-9", capsys)  # stops in 000003: needs 000004 not at all
    assert rc == 0, err
    rc, _, err = _plan(fresh, "latest", capsys)
    assert rc == 12 and gone in err and "not in the archive" in err, err


def test_catalog_manifest_without_one_says_what_to_do(
    fresh: Fresh, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = _plan(fresh, "latest", capsys, "--catalog", "manifest")
    assert rc == 9 and "no state manifest" in err and "--catalog archive" in err, err


def test_a_damaged_manifest_plans_from_the_archive_as_its_error_promises(
    fresh: Fresh, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.unit.test_manifest import damage_a_page

    rc, want, err = _plan(fresh, "latest", capsys, "--from", fresh.url)  # no manifest yet
    assert rc == 0, err
    _host_manifest(fresh)
    damage_a_page(fresh.state / "manifest.sqlite")
    rc, out, err = _plan(fresh, "latest", capsys, "--from", fresh.url)
    assert rc == 0 and json.loads(out) == json.loads(want), err
    assert "is damaged" in err and f"planning from the archive at {fresh.url}" in err
