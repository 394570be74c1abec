"""What ship-time verification must prove: a checksum flag that lies, trailing zeros.

Fixtures are built in the test from real binlogs of the corpus (the FDE layout
is in docs/binlog.md): flip the FDE's checksum_alg byte, append zero bytes.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import pytest

from shipper.binlog import BinlogInfo, read_events, scan_stream
from shipper.errors import BinlogFormatError

from .corpus import BINLOGS

CRC32_FILE = "cdcrs__5.7_04_rotate_log.bin"  # MySQL 5.7, CRC32, ends with ROTATE
MARIADB_FILE = "mdbpoc__domain_id_0_mariadb-repl-bin.000010"  # MariaDB 11.8, CRC32
#: real files written with binlog_checksum=NONE: their FDE still carries a valid CRC32
NO_CHECKSUM_FILES = ["zalora__fixtures_mysql-bin.07", "rmc__ver_trunk_row_v2.001"]


def scan(data: bytes) -> BinlogInfo:
    return scan_stream(io.BytesIO(data), name="mysql-bin.000001")


def fde_bounds(data: bytes) -> tuple[int, int]:
    """(start, end) of the format description event that follows the magic."""
    (size,) = struct.unpack_from("<I", data, 4 + 9)
    return 4, 4 + size


def flip_checksum_flag(data: bytes, *, recompute_fde_crc: bool) -> bytes:
    """Set the FDE's checksum_alg (the byte before its 4-byte CRC) to 0 = off."""
    start, end = fde_bounds(data)
    out = bytearray(data)
    assert out[end - 5] == 1  # CRC32
    out[end - 5] = 0
    if recompute_fde_crc:  # as a writer that believed the flag would have
        head = bytearray(out[start:end])
        head[17] &= ~0x01  # the CRC is over the event with the in-use flag clear
        struct.pack_into("<I", out, end - 4, zlib.crc32(bytes(head[:-4])))
    return bytes(out)


@pytest.mark.parametrize("recompute", [False, True], ids=["flag-byte-only", "fde-crc-valid"])
@pytest.mark.parametrize("name", [CRC32_FILE, MARIADB_FILE])
def test_fde_checksum_flag_flipped_is_flagged(name: str, recompute: bool) -> None:
    """The FDE says "no checksums" but the events carry CRC32s: flagged, never complete."""
    original = (BINLOGS / name).read_bytes()
    good = scan(original)
    info = scan(flip_checksum_flag(original, recompute_fde_crc=recompute))
    assert info.status == "checksum_flag_mismatch"
    assert info.checksum_flag_error_at == 4
    assert info.damage is not None and "flipped flag" in info.damage
    # the CRCs the file carries are still verified, and bodies are read without them
    assert info.crc_error_at is None
    assert info.rotate_to == good.rotate_to
    assert info.gtid_executed_end == good.gtid_executed_end
    assert info.transactions == good.transactions


def test_flipped_flag_is_seen_past_a_damaged_first_event() -> None:
    """The event right after the FDE is damaged: a later one still proves the flag false."""
    name = "mdbpoc__domain_id_0_mariadb-repl-bin.000009"
    _, events = read_events(BINLOGS / name)
    assert len(events) > 3
    blob = bytearray(flip_checksum_flag((BINLOGS / name).read_bytes(), recompute_fde_crc=True))
    blob[events[1].end_pos - 2] ^= 0x40  # inside the first event's stored CRC
    info = scan(bytes(blob))
    assert info.checksum_flag_error_at == 4
    assert info.crc_error_at == events[1].pos
    assert info.damage is not None


def test_flipped_flag_still_pins_a_damaged_event() -> None:
    original = (BINLOGS / CRC32_FILE).read_bytes()
    _, events = read_events(BINLOGS / CRC32_FILE)
    blob = bytearray(flip_checksum_flag(original, recompute_fde_crc=True))
    hit = events[-1]  # the flag is proved false by the event after the FDE; damage a later one
    blob[hit.pos + 20] ^= 0x40
    info = scan(bytes(blob))
    assert info.crc_error_at == hit.pos
    assert info.status == "crc_mismatch"
    assert info.damage is not None


@pytest.mark.parametrize("name", NO_CHECKSUM_FILES)
def test_real_no_checksum_binlog_is_not_flagged(name: str) -> None:
    """Servers checksum the FDE even with binlog_checksum=NONE: that alone is no lie."""
    data = (BINLOGS / name).read_bytes()
    start, end = fde_bounds(data)
    assert data[end - 5] == 0
    head = bytearray(data[start:end])
    head[17] &= ~0x01
    assert zlib.crc32(bytes(head[:-4])) == struct.unpack_from("<I", data, end - 4)[0]
    info = scan(data)
    assert info.checksum == "NONE"
    assert info.checksum_flag_error_at is None
    assert info.status != "checksum_flag_mismatch"
    assert info.damage is None


@pytest.mark.parametrize("name", [CRC32_FILE, MARIADB_FILE, "zalora__fixtures_mysql-bin.07"])
@pytest.mark.parametrize("zeros", [19, 64 << 10, 5 << 20], ids=["19B", "64KiB", "5MiB"])
def test_trailing_zero_bytes_are_truncated_at_the_first_zero(name: str, zeros: int) -> None:
    """A pre-allocated or crashed file: valid events, then zeros. Truncated, not refused."""
    original = (BINLOGS / name).read_bytes()
    good = scan(original)
    blob = original + bytes(zeros)
    info = scan(blob)
    assert info.status == "truncated"
    assert info.truncated_at == len(original)
    assert info.size == len(blob)
    assert info.sha256 == hashlib.sha256(blob).hexdigest()
    assert info.event_count == good.event_count
    assert info.index.to_bytes() == good.index.to_bytes()
    assert info.damage is None  # archived at its normal key, with its status


def test_zeros_then_data_is_a_format_error() -> None:
    original = (BINLOGS / CRC32_FILE).read_bytes()
    with pytest.raises(BinlogFormatError, match=f"offset {len(original)}"):
        scan(original + bytes(64) + b"\x01" + bytes(64))
    # also when the data comes only after a buffer refill
    with pytest.raises(BinlogFormatError, match=f"offset {len(original)}"):
        scan(original + bytes(5 << 20) + b"\x01")


def test_scan_that_stops_early_still_hashes_the_whole_file() -> None:
    """Past a CRC mismatch lengths are not trusted and the scan stops; the verdict's
    size and sha256 (what the shipper seals and verifies) are still the whole file's."""
    original = (BINLOGS / CRC32_FILE).read_bytes()
    _, events = read_events(BINLOGS / CRC32_FILE)
    blob = bytearray(original)
    blob[events[1].pos + 20] ^= 0x40  # CRC mismatch
    blob += b"\xff" * (5 << 20)  # then an event of impossible size: the scan stops
    info = scan(bytes(blob))
    assert info.crc_error_at == events[1].pos
    assert info.size == len(blob)
    assert info.sha256 == hashlib.sha256(blob).hexdigest()
