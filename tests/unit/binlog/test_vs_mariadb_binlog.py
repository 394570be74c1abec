"""Our event headers equal mariadb-binlog's, event by event, on the whole corpus.

``mariadb-binlog --hexdump`` prints, per event, ``# at POS``, a line
``#YYMMDD HH:MM:SS server id N  end_log_pos M [CRC32 0x...]`` and the raw
common header (timestamp, type, server id, size, end_log_pos, flags). For files
it cannot read (MySQL 8 compressed transaction payloads) we assert what the
format fixes instead: the events tile the file and every CRC32 verifies.
"""

from __future__ import annotations

import calendar
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from shipper.binlog import EventHeader, read_events, scan_file
from shipper.errors import BinlogFormatError

from .corpus import BINLOGS, FORMAT_ERROR, NAMES, TRUNCATED, UNREADABLE

MARIADB_BINLOG = shutil.which("mariadb-binlog") or shutil.which("mysqlbinlog")
pytestmark = pytest.mark.skipif(MARIADB_BINLOG is None, reason="mariadb-binlog not installed")

_AT = re.compile(r"^# at (\d+)$")
_INFO = re.compile(
    r"^#(\d{6}) +(\d{1,2}):(\d\d):(\d\d) server id (\d+)\s+end_log_pos (\d+)( CRC32 0x[0-9a-f]+)?"
)
_HEX = re.compile(
    r"^#\s+([0-9a-f]+)\s+\|((?:[0-9a-f]{2} ){4})\|([0-9a-f]{2})\s+\|((?:[0-9a-f]{2} ){4})\|"
    r"((?:[0-9a-f]{2} ){4})\|((?:[0-9a-f]{2} ){4})\|([0-9a-f]{2} [0-9a-f]{2})"
)


@dataclass
class TheirEvent:
    pos: int
    timestamp: int = -1
    server_id: int = -1
    log_pos: int = -1
    has_crc: bool = False
    raw_ts: int = -1
    type_code: int = -1
    raw_server_id: int = -1
    size: int = -1
    raw_log_pos: int = -1
    flags: int = -1


def _le(hexbytes: str) -> int:
    return int.from_bytes(bytes.fromhex(hexbytes.replace(" ", "")), "little")


def mariadb_binlog_events(path: Path) -> tuple[list[TheirEvent], str]:
    assert MARIADB_BINLOG
    res = subprocess.run(
        [MARIADB_BINLOG, "--hexdump", "--base64-output=never", "--force-if-open", str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        env={**os.environ, "TZ": "UTC"},
        check=False,
    )
    # Row events are buffered and printed after the "# at" lines of the whole
    # statement, in order: so fill events first-come, first-served.
    events: list[TheirEvent] = []
    n_info = n_hex = 0
    for line in res.stdout.splitlines():
        if m := _AT.match(line):
            events.append(TheirEvent(int(m.group(1))))
        elif n_info < len(events) and (m := _INFO.match(line)):
            ymd, hh, mm, ss, sid, end, crc = m.groups()
            t = time.strptime(f"{ymd} {int(hh):02d}:{mm}:{ss}", "%y%m%d %H:%M:%S")
            ev = events[n_info]
            n_info += 1
            ev.timestamp = calendar.timegm(t)
            ev.server_id, ev.log_pos, ev.has_crc = int(sid), int(end), crc is not None
        elif n_hex < len(events) and (m := _HEX.match(line)):
            # (the dump's own position column is end_log_pos - size: not checked)
            _hpos, ts, typ, sid, size, logpos, flags = m.groups()
            ev = events[n_hex]
            n_hex += 1
            ev.raw_ts, ev.type_code, ev.raw_server_id = _le(ts), int(typ, 16), _le(sid)
            ev.size, ev.raw_log_pos, ev.flags = _le(size), _le(logpos), _le(flags)
    return events, res.stderr


def _compare(ours: list[EventHeader], theirs: list[TheirEvent]) -> None:
    for o, t in zip(ours, theirs, strict=False):
        assert o.pos == t.pos
        assert o.type_code == t.type_code, f"type at {o.pos}"
        assert o.timestamp == t.raw_ts
        # the printed date has whole seconds; a zero timestamp prints as "now"-ish garbage
        if o.timestamp:
            assert o.timestamp == t.timestamp, f"timestamp at {o.pos}"
        assert o.server_id == t.server_id == t.raw_server_id
        assert o.log_pos == t.log_pos == t.raw_log_pos
        assert o.size == t.size
        assert o.flags == t.flags
        assert (o.crc_ok is not None) == t.has_crc, f"CRC presence at {o.pos}"


@pytest.mark.parametrize("name", NAMES)
def test_events_equal_mariadb_binlog(name: str) -> None:
    path = BINLOGS / name
    theirs, stderr = mariadb_binlog_events(path)
    if name in FORMAT_ERROR:
        ours: list[EventHeader] = []
        with pytest.raises(BinlogFormatError):
            scan_file(path, on_event=ours.append)
        assert f"offset {FORMAT_ERROR[name]}" in stderr
        # mariadb-binlog printed the events up to the bad one; we reported its header
        assert [e.pos for e in ours] == [t.pos for t in theirs] + [FORMAT_ERROR[name]]
        _compare(ours, theirs)
        return
    info, ours = read_events(path)
    if name in UNREADABLE:
        # it read every event before the first of the type it cannot read, and said why
        stop = ours[len(theirs)]
        assert stop.type_code == UNREADABLE[name]
        assert f"event_type: {UNREADABLE[name]}" in stderr
        assert all(e.type_code != stop.type_code for e in ours[: len(theirs)])
        _compare(ours[: len(theirs)], theirs)
        assert 4 + sum(e.size for e in ours) == info.size
        assert all(e.crc_ok is (True if info.checksum == "CRC32" else None) for e in ours)
        return
    if name in TRUNCATED:
        assert "Event truncated" in stderr
    assert len(ours) == len(theirs), stderr[-500:]
    _compare(ours, theirs)
