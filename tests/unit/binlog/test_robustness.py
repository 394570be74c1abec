"""Damaged input: truncations and byte flips give a clean verdict or our format error.

Never an IndexError, struct.error or a hang. For checksummed files a flip is
pinned to the event it hit.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipper.binlog import BinlogInfo, EventHeader, read_events, scan_stream, scanner
from shipper.errors import BinlogFormatError

from .corpus import BINLOGS

SAMPLES = [
    "cdcrs__5.7_30_write_rows_v2_log.bin",  # MySQL 5.7, CRC32, GTIDs
    "apecloud__mysql-bin.000057",  # MySQL 8, compressed transaction payloads
    "rmc__binlog_transaction_with_GTID_TAG.000001",  # MySQL 9.6, tagged GTIDs
    "mdbpoc__domain_id_0_mariadb-repl-bin.000010",  # MariaDB 11.8
    "zalora__fixtures_mysql-bin.07",  # MariaDB 10.0, no checksums, in use
    "rmc__binlog_transaction.000001",  # MySQL 5.0, pre-checksum format
    "easypost__bin-log.000001",  # Percona 5.7, previous GTIDs
]
DATA = {n: (BINLOGS / n).read_bytes() for n in SAMPLES}
EVENTS = {n: read_events(BINLOGS / n)[1] for n in SAMPLES}
FAST = settings(
    max_examples=int(os.environ.get("BINLOG_FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def scan_bytes(data: bytes, name: str = "x") -> BinlogInfo:
    return scan_stream(io.BytesIO(data), name=name)


@FAST
@given(name=st.sampled_from(SAMPLES), data=st.data())
def test_truncation_reports_the_partial_event(name: str, data: st.DataObject) -> None:
    blob = DATA[name]
    n = data.draw(st.integers(0, len(blob)))
    cut = blob[:n]
    if n < 4:
        with pytest.raises(BinlogFormatError):
            scan_bytes(cut)
        return
    info = scan_bytes(cut)
    events = EVENTS[name]
    whole = [e for e in events if e.end_pos <= n]
    assert info.event_count == len(whole)
    assert info.size == n
    partial = [e for e in events if e.pos < n < e.end_pos]
    if partial:
        assert info.truncated_at == partial[0].pos
        assert info.status == "truncated"
        assert not info.complete
    else:
        assert info.truncated_at is None
    assert info.crc_error_at is None
    assert info.transactions <= len(info.index) + 0 and all(t.end <= n for t in info.index)


@FAST
@given(name=st.sampled_from(SAMPLES), data=st.data())
def test_byte_flips_give_a_verdict_or_format_error(name: str, data: st.DataObject) -> None:
    blob = bytearray(DATA[name])
    flips = data.draw(
        st.lists(
            st.tuples(st.integers(0, len(blob) - 1), st.integers(1, 255)),
            min_size=1,
            max_size=4,
            unique_by=lambda t: t[0],
        )
    )
    for at, x in flips:
        blob[at] ^= x
    try:
        info = scan_bytes(bytes(blob))
    except BinlogFormatError:
        return
    assert info.size == len(blob)
    events: list[EventHeader] = EVENTS[name]
    first_hit = min(at for at, _ in flips)
    fde = events[0]
    if info.checksum == "CRC32" and first_hit >= fde.end_pos:
        # with checksums on, damage after the FDE is pinned to the event it hit
        hit = next(e for e in events if e.pos <= first_hit < e.end_pos)
        assert hit.pos in (info.crc_error_at, info.truncated_at), (hit, info)
        assert info.status in ("crc_mismatch", "truncated")


@FAST
@given(name=st.sampled_from(SAMPLES), chunk=st.integers(1, 300))
def test_stream_in_small_reads_equals_file(name: str, chunk: int) -> None:
    class Trickle(io.RawIOBase):
        def __init__(self, data: bytes) -> None:
            self.src = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b: memoryview) -> int:  # type: ignore[override]
            piece = self.src.read(min(len(b), chunk))
            b[: len(piece)] = piece
            return len(piece)

    a = scan_stream(Trickle(DATA[name]), name=name)  # type: ignore[arg-type]
    b = read_events(BINLOGS / name)[0]
    assert a == b


@pytest.mark.parametrize("name", SAMPLES)
def test_tiny_buffer_takes_the_big_event_path_with_the_same_result(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a 64-byte buffer most events are 'bigger than the buffer' and streamed."""
    normal, normal_events = read_events(BINLOGS / name)
    monkeypatch.setattr(scanner, "BLOCK", 64)
    small, small_events = read_events(BINLOGS / name)
    assert small_events == normal_events
    assert small == normal
    # and a flipped byte inside a streamed event is still caught
    if normal.checksum == "CRC32":
        big = max(normal_events[1:], key=lambda e: e.size)
        blob = bytearray(DATA[name])
        blob[big.pos + 20] ^= 0x01
        assert scan_bytes(bytes(blob)).crc_error_at == big.pos


# --------------------------------------------------------------------------- crafted


def _event(typ: int, body: bytes, pos: int, ts: int = 1_700_000_000, crc: bool = True) -> bytes:
    size = 19 + len(body) + (4 if crc else 0)
    head = struct.pack("<IBIIIH", ts, typ, 1, size, pos + size, 0)
    ev = head + body
    return ev + struct.pack("<I", zlib.crc32(ev)) if crc else ev


def test_unknown_event_type_is_passed_over_and_reported() -> None:
    """Aurora writes a type-100 padding event; MySQL never documents it."""
    blob = DATA["cdcrs__5.7_30_write_rows_v2_log.bin"]
    events = EVENTS["cdcrs__5.7_30_write_rows_v2_log.bin"]
    at = events[2].pos  # after FDE and Previous_gtids
    pad = _event(100, b"\0" * 37, at)
    info = scan_bytes(blob[:at] + pad + blob[at:])
    assert info.unknown_event_types == (100,)
    assert info.crc_error_at is None and info.status == "complete"
    assert info.event_count == len(events) + 1
    assert info.transactions == scan_bytes(blob).transactions


@pytest.mark.parametrize(
    ("blob", "what"),
    [
        (b"", "magic"),
        (b"\xfebi", "magic"),
        (b"GIF89a" + b"\0" * 100, "magic"),
        (b"\xfebin" + _event(2, b"x" * 40, 4, crc=False), "format description"),
        (b"\xfebin" + struct.pack("<IBIIIH", 0, 15, 1, 5, 0, 0) + b"\0" * 200, "size"),
        (b"\xfebin" + _event(15, b"\x04\x00" + b"\0" * 40, 4, crc=False), "too short"),
    ],
)
def test_garbage_raises_format_error_naming_file_and_offset(blob: bytes, what: str) -> None:
    with pytest.raises(BinlogFormatError) as exc:
        scan_stream(io.BytesIO(blob), name="garbage.000001")
    msg = str(exc.value)
    assert "garbage.000001" in msg and "offset" in msg and what in msg


def test_only_magic_is_an_empty_unclosed_binlog() -> None:
    info = scan_bytes(b"\xfebin")
    assert info.event_count == 0 and info.status == "not_closed" and info.server_version is None


def test_fde_crc_is_verified_with_the_in_use_flag_cleared(tmp_path: Path) -> None:
    """A closed file's FDE CRC was computed with the flag set; servers clear it in place."""
    blob = bytearray(DATA["cdcrs__5.7_30_write_rows_v2_log.bin"])
    assert scan_bytes(bytes(blob)).crc_error_at is None
    blob[4 + 17] |= 0x01  # set LOG_EVENT_BINLOG_IN_USE_F without re-computing the CRC
    info = scan_bytes(bytes(blob))
    assert info.in_use and info.crc_error_at is None
    blob[4 + 18] ^= 0x40  # any other header bit does count
    assert scan_bytes(bytes(blob)).crc_error_at == 4


def test_stream_with_only_read() -> None:
    class ReadOnly:
        def __init__(self, data: bytes) -> None:
            self.src = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self.src.read(min(n, 1000))

    name = SAMPLES[0]
    info = scan_stream(ReadOnly(DATA[name]), name=name)  # type: ignore[arg-type]
    assert info == read_events(BINLOGS / name)[0]
