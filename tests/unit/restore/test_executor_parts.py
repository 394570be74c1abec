"""Executor pieces that need no server: connection strings, the resume journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipper.errors import RestoreError
from shipper.restore.executor import ApplyOptions, Executor
from shipper.restore.model import parse_target
from shipper.restore.planner import plan_restore
from shipper.restore.tools import Conn
from tests.unit.restore.conftest import Archive


def test_conn_parse() -> None:
    c = Conn.parse("socket=/run/mysqld/mysqld.sock,user=admin,password=s3cret")
    assert (c.socket, c.user, c.password) == ("/run/mysqld/mysqld.sock", "admin", "s3cret")
    assert "s3cret" not in c.describe()
    c = Conn.parse("host=db1, port=3307")
    assert (c.host, c.port, c.user, c.describe()) == ("db1", 3307, "root", "db1:3307")
    with pytest.raises(RestoreError, match="comma-separated"):
        Conn.parse("db1:3307")


def test_executor_refuses_bad_combinations(archive: Archive, tmp_path: Path) -> None:
    plan = plan_restore(
        parse_target("latest"), archive.backups, archive.binlogs, archive.load, backup_id="b1"
    )  # a mariabackup
    store: object = None
    with pytest.raises(RestoreError, match="exactly one of --datadir"):
        Executor(plan, store, [], ApplyOptions(work_dir=tmp_path))  # type: ignore[arg-type]
    with pytest.raises(RestoreError, match="restores into a datadir"):
        Executor(
            plan,
            store,
            [],
            ApplyOptions(  # type: ignore[arg-type]
                work_dir=tmp_path, target=Conn(socket="/x"), replay="pipe"
            ),
        )
    with pytest.raises(RestoreError, match="--replay must be one of"):
        Executor(
            plan,
            store,
            [],
            ApplyOptions(  # type: ignore[arg-type]
                work_dir=tmp_path, datadir=tmp_path / "d", replay="fast"
            ),
        )


def test_journal_belongs_to_one_plan_and_destination(archive: Archive, tmp_path: Path) -> None:
    a = plan_restore(parse_target("latest"), archive.backups, archive.binlogs, archive.load)
    b = plan_restore(parse_target("0-1-14"), archive.backups, archive.binlogs, archive.load)
    store: object = None
    opts = ApplyOptions(work_dir=tmp_path / "w", datadir=tmp_path / "d")
    ex = Executor(a, store, [], opts)  # type: ignore[arg-type]
    ex.journal.doc["base"] = True
    ex.journal.save()
    Executor(a, store, [], opts)  # same plan, same destination: resumes
    with pytest.raises(RestoreError, match="belongs to another restore plan"):
        Executor(b, store, [], opts)  # type: ignore[arg-type]
    other = ApplyOptions(work_dir=tmp_path / "w", datadir=tmp_path / "elsewhere")
    with pytest.raises(RestoreError, match="belongs to another restore plan"):
        Executor(a, store, [], other)  # type: ignore[arg-type]


def test_one_restore_per_work_dir(archive: Archive, tmp_path: Path) -> None:
    """A second restore apply on a work dir in use is refused before it touches
    anything: it would take the running one's server for a stale one and stop it."""
    import fcntl
    import os

    plan = plan_restore(parse_target("latest"), archive.backups, archive.binlogs, archive.load)
    store: object = None
    opts = ApplyOptions(work_dir=tmp_path / "w", datadir=tmp_path / "d")
    ex = Executor(plan, store, [], opts)  # type: ignore[arg-type]
    fd = os.open(tmp_path / "w" / "lock", os.O_RDWR | os.O_CREAT)  # "the other run"
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(RestoreError, match="another restore apply is running"):
            ex.run()
    finally:
        os.close(fd)
    assert not (tmp_path / "d").exists()
