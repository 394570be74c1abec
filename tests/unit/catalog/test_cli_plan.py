"""``restore plan`` and ``backup list`` on a machine that has only the config and the key."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from shipper import objects
from shipper.cli import main as cli
from shipper.keys import make_provider
from shipper.storage import open_backend
from tests.helpers import load
from tests.synthetic_archive import put_binlog
from tests.unit.catalog.conftest import TENANT, Fresh
from tests.unit.restore.conftest import build


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli(args)
    out, err = capsys.readouterr()
    return rc, out, err


def test_plan_from_the_archive_alone(fresh: Fresh, capsys: pytest.CaptureFixture[str]) -> None:
    state, url = fresh.state, fresh.url
    base = ["restore", "plan", "--to", "latest", "--state-dir", str(state), "--json"]
    rc, out, err = _run([*base, "--from", url], capsys)
    assert rc == 0, err
    plan = json.loads(out)
    assert plan["backup"]["id"] == "b2" and plan["stop"]["file"] == "mysql-bin.000005"
    assert not (state / "manifest.sqlite").exists()
    # Without --from and without a manifest: the first target is scanned, and it says so.
    rc, out2, err = _run(base, capsys)
    assert rc == 0 and json.loads(out2) == plan
    assert "no state manifest" in err and url in err


def test_backup_object_gone_is_refused_before_anything_is_done(
    fresh: Fresh, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = fresh.state, fresh.url
    key = objects.backup_key(TENANT, 1, "b2", "mysqldump")
    open_backend(url).delete(key)
    rc, _, err = _run(
        ["restore", "plan", "--to", "latest", "--state-dir", str(state), "--from", url], capsys
    )
    assert rc == 12 and key in err and "not in the archive" in err, err
    assert "Traceback" not in err


def test_several_servers_need_server_id(fresh: Fresh, capsys: pytest.CaptureFixture[str]) -> None:
    state, url = fresh.state, fresh.url
    store = open_backend(url)
    a = build()
    row = replace(a.binlogs[0], server_id=2)
    providers = [make_provider(k) for k in load(state / "config.toml").keys]
    put_binlog(store, providers, row, a.indexes[row.name], tenant=TENANT)
    base = ["restore", "plan", "--to", "latest", "--state-dir", str(state), "--from", url]
    rc, _, err = _run(base, capsys)
    assert rc == 12 and "servers 1, 2" in err and "--server-id" in err
    rc, out, err = _run([*base, "--server-id", "1", "--json"], capsys)
    assert rc == 0 and json.loads(out)["stop"]["file"] == "mysql-bin.000005", err
    rc, _, err = _run([*base, "--server-id", "7"], capsys)
    assert rc == 12 and "--server-id 7" in err


def test_backup_list_from_the_archive(fresh: Fresh, capsys: pytest.CaptureFixture[str]) -> None:
    state, url = fresh.state, fresh.url
    rc, out, err = _run(
        ["backup", "list", "--state-dir", str(state), "--from", url, "--json"], capsys
    )
    assert rc == 0, err
    recs = json.loads(out)
    assert [(r["id"], r["verification"]["state"]) for r in recs] == [
        ("b1", "verified"),
        ("b2", "verified"),
    ]
    rc, out, _ = _run(["backup", "list", "--state-dir", str(state), "--from", url], capsys)
    assert rc == 0 and "b1" in out and "verified by synthetic" in out
