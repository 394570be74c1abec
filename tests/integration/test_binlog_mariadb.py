"""Binlogs written by a real MariaDB: our GTIDs equal the server's own answers.

A private server (``mariadb_factory``) writes transactions in several GTID
domains and under two server ids; for every transaction the parser indexes,
``BINLOG_GTID_POS(file, end)`` must equal the GTID position we compute there,
and the binlog state after the last file must equal ``@@gtid_binlog_state``.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from shipper.binlog import MariaDBGtidList, read_events, scan_file
from shipper.binlog.gtid import MariaDBGtidListBuilder

pytestmark = pytest.mark.mariadb


def _workload(server: Any) -> list[tuple[int, str]]:
    """Transactions in domains 0, 1, 2 (two server ids in domain 2), DDL, autocommit."""
    expected: list[tuple[int, str]] = []
    with contextlib.closing(server.connect()) as conn, conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS bl")
        cur.execute("CREATE TABLE IF NOT EXISTS bl.t (id INT PRIMARY KEY, v VARCHAR(64))")
        n = 0
        for round_ in range(3):
            for domain in (0, 1, 2):
                cur.execute(f"SET SESSION gtid_domain_id={domain}")
                for sid in (server.server_id, 99) if domain == 2 else (server.server_id,):
                    cur.execute(f"SET SESSION server_id={sid}")
                    cur.execute("BEGIN")
                    for _ in range(3):
                        n += 1
                        cur.execute("INSERT INTO bl.t VALUES (%s, %s)", (n, f"r{round_}"))
                    cur.execute("COMMIT")
                    n += 1
                    cur.execute("INSERT INTO bl.t VALUES (%s, 'autocommit')", (n,))
                    cur.execute(f"CREATE TABLE bl.ddl_{round_}_{domain}_{sid} (x INT)")
            if round_ == 1:
                cur.execute("FLUSH BINARY LOGS")
        cur.execute("SET SESSION server_id=@@global.server_id")
        cur.execute("SELECT @@gtid_binlog_state, @@gtid_binlog_pos")
        row = cur.fetchone()
        assert row is not None
        expected.append((0, str(row[0])))
        expected.append((1, str(row[1])))
    return expected


@pytest.fixture(scope="module")
def server(mariadb_factory: Any) -> Any:
    return mariadb_factory(server_id=7, max_binlog_size=1 << 20)


def test_gtids_equal_binlog_gtid_pos(server: Any) -> None:
    state_text = _workload(server)[0][1]
    pos_text = server.query("SELECT @@gtid_binlog_pos")[0][0]
    server.flush_binary_logs()
    files = server.binary_logs()
    assert len(files) >= 3
    builder = MariaDBGtidListBuilder()
    checked = 0
    domains_seen: set[int] = set()
    for name, size in files[:-1]:
        path: Path = server.binlog_dir / name
        info = scan_file(path)
        assert info.status == "complete", (name, info)
        assert info.size == size
        assert info.gtid_flavor == "mariadb"
        assert info.server_id == 7
        # the file's Gtid_list is the server's state at its start
        start = server.query("SELECT BINLOG_GTID_POS(%s, 4)", (name,))[0][0] or ""
        assert info.gtid_set_previous().position() == MariaDBGtidList.parse(start)
        for t in info.index:
            assert t.gtid is not None
            d, s, n = (int(x) for x in t.gtid.split("-"))
            domains_seen.add(d)
            builder.add3(d, s, n)
            ours = info.gtid_set_previous().union(builder.freeze()).position()
            theirs = server.query("SELECT BINLOG_GTID_POS(%s, %s)", (name, t.end))[0][0]
            assert ours == MariaDBGtidList.parse(theirs), (name, t)
            checked += 1
        builder = MariaDBGtidListBuilder(info.gtid_set_end())
    assert domains_seen == {0, 1, 2}
    # CREATE DATABASE, CREATE TABLE, then 3 rounds x 4 (domain, server) x 3 transactions
    assert checked == 2 + 3 * 4 * 3
    last_closed = scan_file(server.binlog_dir / files[-2][0])
    assert last_closed.gtid_set_end() == MariaDBGtidList.parse(state_text)
    assert last_closed.gtid_set_end().position() == MariaDBGtidList.parse(pos_text)
    # the live file: open, in use, begins with the final state
    live = scan_file(server.binlog_dir / files[-1][0])
    assert live.in_use and live.status == "in_use"
    assert live.gtid_set_previous() == MariaDBGtidList.parse(state_text)


def test_transaction_boundaries_and_times(server: Any) -> None:
    """Each transaction spans GTID..XID/COMMIT/DDL; commit times lie in the file's range."""
    name = server.binary_logs()[0][0]
    info, events = read_events(server.binlog_dir / name)
    by_pos = {e.pos: e for e in events}
    ends = {e.end_pos: e for e in events}
    for t in info.index:
        assert by_pos[t.start].type_code == 162  # MariaDB GTID event opens it
        assert ends[t.end].type_code in (2, 16)  # Query (COMMIT / DDL) or Xid closes it
        assert info.first_timestamp is not None and info.last_timestamp is not None
        assert info.first_timestamp * 10**6 <= t.commit_us <= info.last_timestamp * 10**6
    assert info.transactions == len(info.index)


def test_encrypted_binlog_is_reported_not_parsed(mariadb_factory: Any, tmp_path: Path) -> None:
    keyfile = tmp_path / "keys.txt"
    keyfile.write_text("1;" + "5c" * 32 + "\n")
    enc = mariadb_factory(
        server_id=8,
        extra_args=[
            "--plugin-load-add=file_key_management",
            f"--file-key-management-filename={keyfile}",
            "--encrypt-binlog=ON",
        ],
    )
    enc.write_rows("encdb.t", rows=200)
    enc.flush_binary_logs()
    name, size = enc.binary_logs()[0]
    info, events = read_events(enc.binlog_dir / name)
    assert info.encrypted and info.encrypted_at is not None
    assert info.size == size
    assert info.status == "complete"  # closed by the server, frames to its end
    assert events[1].type_code == 164
    assert all(e.type_code == -1 for e in events[2:])
    assert sum(e.size for e in events) + 4 == size
    assert info.transactions == 0 and info.gtid_executed_end == ""
    assert info.last_timestamp == events[1].timestamp  # START_ENCRYPTION: last clear time
