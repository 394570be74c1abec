"""``restore plan`` and ``backup list`` on a machine that has only the config and the key."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from shipper import config as config_mod
from shipper import objects
from shipper.cli import main as cli
from shipper.config import MySQLConfig
from shipper.keys import make_provider
from shipper.keys.local import LocalKeyring
from shipper.storage import open_backend
from tests.helpers import load
from tests.synthetic_archive import put_backup, put_binlog
from tests.unit.restore.conftest import build

TENANT = "t"


def _fresh_machine(tmp_path: Path) -> tuple[Path, str]:
    """An archive at file://…/archive written by 'another host', and a state dir that holds
    only a config naming it and the keyring."""
    state = tmp_path / "dr-state"
    state.mkdir()
    kr = LocalKeyring.create(state / "keyring")
    url = f"file://{tmp_path / 'archive'}"
    (state / "config.toml").write_text(
        config_mod.render_default(
            state,
            tenant=TENANT,
            mysql=MySQLConfig(socket=str(tmp_path / "no-server.sock")),
            archive_url=url,
            keyring=state / "keyring",
        )
    )
    store = open_backend(url)
    a = build()
    for row in a.binlogs:
        put_binlog(store, [kr], row, a.indexes[row.name], tenant=TENANT)
    for b in a.backups:
        put_backup(store, [kr], b, tenant=TENANT, server_id=1)
    return state, url


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli(args)
    out, err = capsys.readouterr()
    return rc, out, err


def test_plan_from_the_archive_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state, url = _fresh_machine(tmp_path)
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
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state, url = _fresh_machine(tmp_path)
    key = objects.backup_key(TENANT, 1, "b2", "mysqldump")
    open_backend(url).delete(key)
    rc, _, err = _run(
        ["restore", "plan", "--to", "latest", "--state-dir", str(state), "--from", url], capsys
    )
    assert rc == 12 and key in err and "not in the archive" in err, err
    assert "Traceback" not in err


def test_several_servers_need_server_id(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state, url = _fresh_machine(tmp_path)
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


def test_backup_list_from_the_archive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state, url = _fresh_machine(tmp_path)
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
