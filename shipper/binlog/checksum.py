"""Checksum evidence: the FDE's own CRC32, and whether a "no checksums" flag lies.

The FDE body ends with ``checksum_alg`` (1 byte: 0 off, 1 CRC32) and a 4-byte
CRC slot. Servers fill that slot with a valid CRC32 of the FDE even with
``binlog_checksum=NONE``, so "the flag says off and the FDE has a valid CRC" is
normal. What proves the flag false is in :func:`denies_crc32`.
"""

from __future__ import annotations

import struct
import zlib

from shipper.binlog import events as E

#: zlib.crc32 over a message followed by its own little-endian CRC-32
CRC_RESIDUE = 0x2144DF1C
#: events after a "no checksums" FDE tried for a CRC32 that proves the flag false
FLAG_PROBES = 8

_CRC = struct.Struct("<I")


def fde_crc_ok(buf: memoryview, pos: int, end: int, alg: int | None = None) -> bool:
    """The CRC32 of the FDE at ``buf[pos:end]`` (its algorithm byte read as ``alg``,
    when given) matches its last 4 bytes.

    It is computed with the in-use flag clear: the server clears that flag in
    place when it closes the file, without rewriting the CRC.
    """
    head = bytearray(buf[pos : pos + E.HEADER_LEN])
    head[17] &= ~E.LOG_EVENT_BINLOG_IN_USE_F & 0xFF
    crc = zlib.crc32(head)
    if alg is None:
        crc = zlib.crc32(buf[pos + E.HEADER_LEN : end - 4], crc)
    else:
        crc = zlib.crc32(buf[pos + E.HEADER_LEN : end - 5], crc)
        crc = zlib.crc32(bytes((alg,)), crc)
    return bool(crc == _CRC.unpack_from(buf, end - 4)[0])


def denies_crc32(buf: memoryview, pos: int, end: int, avail: int) -> bool:
    """Whether a file whose FDE (``buf[pos:end]``) says "no checksums" carries
    CRC32s all the same; ``buf[:avail]`` holds the bytes read so far.

    Either proves it: the FDE's CRC verifies only with the algorithm byte read
    as CRC32 (the byte changed after the CRC was written), or one of the next
    ``FLAG_PROBES`` events, framed by their lengths as far as the buffer holds
    them, ends in a valid CRC32 of itself (1 in 2**32 each by chance), so one
    damaged event right after the FDE does not hide the lie.
    """
    if fde_crc_ok(buf, pos, end, E.CHECKSUM_CRC32):
        return True
    for _ in range(FLAG_PROBES):
        if avail - end < E.HEADER_LEN:
            return False  # no further event in view (the file ends here)
        (size,) = _CRC.unpack_from(buf, end + 9)
        if size < E.HEADER_LEN + 4 or end + size > avail:
            return False
        if zlib.crc32(buf[end : end + size]) == CRC_RESIDUE:
            return True
        end += size
    return False
