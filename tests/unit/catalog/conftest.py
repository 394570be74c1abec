"""A fresh machine: an archive at file://…/archive written by 'another host' (the
synthetic archive of tests/unit/restore), and a state dir holding only a config
naming it and the keyring."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from shipper import config as config_mod
from shipper.config import MySQLConfig
from shipper.keys.local import LocalKeyring
from shipper.storage import open_backend
from tests.synthetic_archive import put_backup, put_binlog
from tests.unit.restore.conftest import Archive, build

TENANT = "t"


@dataclass
class Fresh:
    state: Path
    url: str
    archive: Archive
    keys: dict[str, str]  # binlog name -> object key


@pytest.fixture()
def fresh(tmp_path: Path) -> Fresh:
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
    keys = {
        row.name: put_binlog(store, [kr], row, a.indexes[row.name], tenant=TENANT)
        for row in a.binlogs
    }
    for b in a.backups:
        put_backup(store, [kr], b, tenant=TENANT, server_id=1)
    return Fresh(state, url, a, keys)
