"""Reading a backup's binlog coordinates from what the tools write."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipper import objects
from shipper.errors import RestoreError
from shipper.restore.backup import (
    parse_metadata_file,
    parse_mysqldump_header,
    parse_xtrabackup_binlog_info,
    parse_xtrabackup_info,
    register,
)

DUMP_HEAD = """-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)
--
-- Position to start replication or point-in-time recovery from (the master of this slave)
--

-- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000002', MASTER_LOG_POS=128239;

--
-- GTID to start replication from
--

-- CHANGE MASTER TO MASTER_USE_GTID=slave_pos;
-- SET GLOBAL gtid_slave_pos='0-5-9';
"""

XB_INFO = """uuid = 8b93bf1b-e7a5-11f1-8708-02fc00000001
name =
tool_name = mariabackup
tool_version = 10.11.19-MariaDB
start_time = 2026-11-24 01:22:41
end_time = 2026-11-24 01:22:42
binlog_pos = filename 'mysql-bin.000002', position '128239', GTID of the last change '0-5-9'
innodb_from_lsn = 0
"""


def test_mysqldump_header() -> None:
    c = parse_mysqldump_header(DUMP_HEAD)
    assert (c.binlog_file, c.binlog_pos, c.gtid_set) == ("mysql-bin.000002", 128239, "0-5-9")
    with pytest.raises(RestoreError, match="--master-data=2"):
        parse_mysqldump_header("-- MariaDB dump\nCREATE TABLE t (a int);\n")


def test_xtrabackup_files() -> None:
    c, fields = parse_xtrabackup_info(XB_INFO)
    assert (c.binlog_file, c.binlog_pos, c.gtid_set) == ("mysql-bin.000002", 128239, "0-5-9")
    assert fields["tool_name"] == "mariabackup"
    c = parse_xtrabackup_binlog_info("mysql-bin.000007\t4711\t0-1-99,1-2-3\n")
    assert (c.binlog_file, c.binlog_pos, c.gtid_set) == ("mysql-bin.000007", 4711, "0-1-99,1-2-3")
    assert parse_xtrabackup_binlog_info("binlog.000001 155").gtid_set == ""
    with pytest.raises(RestoreError, match="FILE<TAB>POS"):
        parse_xtrabackup_binlog_info("garbage")


def test_register_recognises_each_file(tmp_path: Path) -> None:
    (tmp_path / "xtrabackup_info").write_text(XB_INFO)
    (tmp_path / "xtrabackup_binlog_info").write_text("mysql-bin.000002\t128239\t0-5-9\n")
    (tmp_path / "dump.sql").write_text(DUMP_HEAD + "CREATE TABLE t (a int);\n")
    assert parse_metadata_file(tmp_path / "xtrabackup_info")[0] == "mariabackup"
    assert parse_metadata_file(tmp_path / "xtrabackup_binlog_info")[0] == "mariabackup"
    assert parse_metadata_file(tmp_path / "dump.sql")[0] == "mysqldump"
    rec = register(
        tmp_path / "dump.sql",
        tenant="acme",
        server_id=5,
        backup_id="nightly",
        consistent_at=1_800_000_000.0,
    )
    assert (rec.id, rec.tool, rec.tenant, rec.server_id) == ("nightly", "mysqldump", "acme", 5)
    assert (rec.binlog_file, rec.binlog_pos, rec.gtid_set) == ("mysql-bin.000002", 128239, "0-5-9")
    assert rec.object_key is None and rec.location == str(tmp_path)
    assert rec.consistent_at == 1_800_000_000.0
    # No archived object to verify: the record says so, and the planner may still use it.
    assert rec.verification.state == "unverified" and rec.verification.by == "backup register"
    row = rec.manifest_row([])
    assert (
        row["extra"]["location"] == str(tmp_path) and row["extra"]["verification"] == "unverified"
    )
    with pytest.raises(RestoreError, match="--id"):
        register(tmp_path / "dump.sql", tenant="acme", server_id=5, backup_id="a/b.c")


def test_backup_key() -> None:
    assert objects.backup_key("acme", 7, "20261124T012755Z-mariabackup-f530c1", "mariabackup") == (
        "acme/mysql/7/backups/20261124T012755Z-mariabackup-f530c1.xbstream.zst.enc"
    )
    assert objects.backup_key("acme", 7, "x", "mysqldump").endswith("/backups/x.sql.zst.enc")
