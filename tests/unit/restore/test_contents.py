"""What a backup holds, read from its bytes in pieces of any size (pure)."""

from __future__ import annotations

import struct
import zlib

import pytest

from shipper.errors import IntegrityError
from shipper.restore import contents
from shipper.restore.contents import DumpScanner, XbstreamScanner, decode_fs_name

DUMP = (
    b"-- MariaDB dump 10.19  Distrib 10.11.19-MariaDB, for debian-linux-gnu (x86_64)\n"
    b"-- CHANGE MASTER TO MASTER_LOG_FILE='mysql-bin.000002', MASTER_LOG_POS=128239;\n"
    b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `mysql` /*!40100 DEFAULT CHARACTER SET utf8 */;\n"
    b"USE `mysql`;\n"
    b"INSERT INTO `t` VALUES " + b"(1,'USE `fake`;\\nCREATE DATABASE `no`'),"
    b"(2,'" + b"x" * 10000 + b"');\n"
    b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop` /*!40100 DEFAULT CHARACTER SET latin1 */;\n"
    b"USE `shop`;\n"
    b"CREATE DATABASE `we``ird`;\n"
    b"-- Dump completed on 2026-11-24 10:41:07\n"
)


def feed_in(scanner: DumpScanner | XbstreamScanner, data: bytes, step: int) -> None:
    for i in range(0, len(data), step):
        scanner.feed(data[i : i + step])


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64, 4095, 1 << 20])
def test_dump_databases_at_any_split(step: int) -> None:
    s = DumpScanner()
    feed_in(s, DUMP, step)
    assert s.databases == {"mysql", "shop", "we`ird"}
    assert s.completed and "MASTER_LOG_POS=128239" in s.header
    assert contents.check("mysqldump", s, {"shop"}) == []


def test_dump_without_a_database_or_cut_short() -> None:
    s = DumpScanner()
    s.feed(DUMP[: DUMP.index(b"CREATE DATABASE /*!32312 IF NOT EXISTS*/ `shop`")])
    problems = contents.check("mysqldump", s, {"shop", "app"})
    assert "cut short" in problems[0]
    assert "it holds no app, shop (the mysqldump backup holds no user database)" in problems[1]


def chunk(path: str, payload: bytes | None, *, crc: int | None = None, kind: bytes = b"P") -> bytes:
    p = path.encode()
    head = b"XBSTCK01" + bytes([0]) + (kind if payload is not None else b"E")
    head += struct.pack("<I", len(p)) + p
    if payload is None:
        return head
    c = zlib.crc32(payload) if crc is None else crc
    return head + struct.pack("<QQI", len(payload), 0, c) + payload


def stream(*members: tuple[str, bytes]) -> bytes:
    """Each member as two payload chunks then its end chunk, as mariabackup writes them."""
    out = b""
    for name, data in members:
        out += chunk(name, data[:5]) + chunk(name, data[5:]) + chunk(name, None)
    return out


XB = stream(
    ("ibdata1", b"\0" * 300),
    ("app/t.ibd", b"pages" * 50),
    ("my@002ddb/db.opt", b"default-character-set=latin1\n"),
    ("mysql/user.MAD", b"u" * 20),
    ("xtrabackup_info", b"binlog_pos = filename 'mysql-bin.000002', position '4'\n"),
    ("empty", b""),
)


@pytest.mark.parametrize("step", [1, 5, 13, 64, 1 << 20])
def test_xbstream_members_at_any_split(step: int) -> None:
    s = XbstreamScanner()
    feed_in(s, XB, step)
    s.finish()
    assert s.databases == {"app", "my-db", "mysql"}
    assert s.members == {
        "ibdata1",
        "app/t.ibd",
        "my@002ddb/db.opt",
        "mysql/user.MAD",
        "xtrabackup_info",
        "empty",
    }
    assert s.text("xtrabackup_info").startswith("binlog_pos = filename 'mysql-bin.000002'")
    assert contents.check("mariabackup", s, {"app", "my-db"}) == []
    assert contents.check("mariabackup", s, {"app", "shop"}) == [
        "it holds no shop (the mariabackup backup holds app, my-db)"
    ]


def test_fs_names_decode() -> None:
    assert decode_fs_name("my@002ddb") == "my-db"
    assert decode_fs_name("plain") == "plain"


def test_xbstream_bad_crc_truncation_and_garbage() -> None:
    bad = chunk("app/t.ibd", b"pages", crc=1) + chunk("app/t.ibd", None)
    with pytest.raises(IntegrityError, match="CRC-32"):
        XbstreamScanner().feed(bad)
    for cut in (3, 14, 20, len(XB) - 3):
        s = XbstreamScanner()
        s.feed(XB[:cut])
        with pytest.raises(IntegrityError, match="truncated"):
            s.finish()
    with pytest.raises(IntegrityError, match="magic"):
        XbstreamScanner().feed(b"-- MariaDB dump 10.19 ...\n" * 2)
    with pytest.raises(IntegrityError, match="not one this reader knows"):
        XbstreamScanner().feed(chunk("x", b"", kind=b"S"))
    empty = XbstreamScanner()
    with pytest.raises(IntegrityError, match="empty"):
        empty.finish()
    assert any("no xtrabackup_info" in p for p in contents.check("mariabackup", empty, set()))
