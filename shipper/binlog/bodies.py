"""Decoders for the event bodies that matter for archiving and restore.

Each takes the buffer, the body's ``[start, end)`` range (checksum excluded)
and the event's file offset (for error messages). Malformed bodies raise
:class:`BodyError`, which the scanner turns into a ``BinlogFormatError`` naming
the file; nothing here lets an ``IndexError`` or ``struct.error`` escape.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from shipper.binlog.gtid import format_uuid

Buffer = bytes | bytearray | memoryview

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_GTID_HEAD = struct.Struct("<B16sq")  # flags, sid, gno
_LOGICAL_TS = struct.Struct("<Bqq")  # ts type, last_committed, sequence_number
_MDB_GTID = struct.Struct("<QIB")  # seq, domain, flags2
_MDB_ENTRY = struct.Struct("<IIQ")  # domain, server, seq

LOGICAL_TIMESTAMP_TYPECODE = 2
MARIADB_FL_STANDALONE = 0x01
MARIADB_FL_PREPARED_XA = 0x40
MARIADB_FL_COMPLETED_XA = 0x80


class BodyError(Exception):
    """A body is shorter than its format requires or holds impossible values."""


@dataclass(frozen=True)
class FormatDescription:
    binlog_version: int
    server_version: str
    create_timestamp: int
    header_len: int
    post_header_lens: bytes
    checksum_alg: int | None  # None: pre-checksum format (no alg byte)

    def post_header_len(self, type_code: int, default: int) -> int:
        if 1 <= type_code <= len(self.post_header_lens):
            return self.post_header_lens[type_code - 1]
        return default


def _version_tuple(version: str) -> tuple[int, int, int]:
    parts: list[int] = []
    for piece in version.split("-", 1)[0].split(".")[:3]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits) if digits else 0)
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def has_checksum_alg(server_version: str) -> bool:
    """Whether a FDE written by this server carries the checksum-algorithm byte.

    MySQL added it in 5.6.1, MariaDB in 5.3.0 (same rule as the servers' own
    ``get_checksum_alg``).
    """
    v = _version_tuple(server_version)
    split = (5, 3, 0) if "mariadb" in server_version.lower() else (5, 6, 1)
    return v >= split


def decode_fde(buf: Buffer, start: int, event_end: int, v3: bool) -> FormatDescription:
    """Decode a FORMAT_DESCRIPTION (or START_V3) body. ``event_end`` includes any checksum."""
    if event_end - start < 56:
        raise BodyError("format description event too short")
    (binlog_version,) = _U16.unpack_from(buf, start)
    raw_version = bytes(buf[start + 2 : start + 52])
    server_version = raw_version.split(b"\0", 1)[0].decode("ascii", "replace")
    (created,) = _U32.unpack_from(buf, start + 52)
    if v3:
        if binlog_version == 1:
            raise BodyError("binlog format v1 (MySQL 3.23) is not supported")
        return FormatDescription(binlog_version, server_version, created, 19, b"", None)
    if event_end - start < 57:
        raise BodyError("format description event too short")
    header_len = buf[start + 56]
    if header_len < 19:
        raise BodyError(f"format description declares a {header_len}-byte event header")
    alg: int | None = None
    phl_end = event_end
    if has_checksum_alg(server_version):
        if event_end - start < 57 + 5:
            raise BodyError("format description event too short for its checksum fields")
        alg = buf[event_end - 5]
        phl_end = event_end - 5
    return FormatDescription(
        binlog_version,
        server_version,
        created,
        header_len,
        bytes(buf[start + 57 : phl_end]),
        alg,
    )


@dataclass(frozen=True)
class MySQLGtidBody:
    uuid: str
    tag: str
    gno: int  # 0 for anonymous
    immediate_commit_us: int | None
    original_commit_us: int | None


def decode_mysql_gtid(buf: Buffer, start: int, end: int) -> MySQLGtidBody:
    """GTID_LOG_EVENT / ANONYMOUS_GTID_LOG_EVENT (fixed little-endian layout)."""
    if end - start < _GTID_HEAD.size:
        raise BodyError("GTID event too short")
    _flags, sid, gno = _GTID_HEAD.unpack_from(buf, start)
    p = start + _GTID_HEAD.size
    immediate = original = None
    if end - p >= _LOGICAL_TS.size and buf[p] == LOGICAL_TIMESTAMP_TYPECODE:
        p += _LOGICAL_TS.size
        if end - p >= 7:
            immediate = int.from_bytes(buf[p : p + 7], "little")
            p += 7
            if immediate & (1 << 55):
                immediate &= ~(1 << 55)
                if end - p < 7:
                    raise BodyError("GTID event: original commit timestamp cut off")
                original = int.from_bytes(buf[p : p + 7], "little")
            else:
                original = immediate
    if gno < 0:
        raise BodyError("GTID event with negative GNO")
    return MySQLGtidBody(format_uuid(bytes(sid)), "", gno, immediate, original)


class _Varlen:
    """mysql::serialization variable-length integers (MySQL 8.3+ tagged GTIDs).

    The count of trailing one-bits in the first byte says how many more bytes
    follow; the value is the little-endian whole shifted right by that count + 1
    (nine bytes, first 0xff: the value is the next eight bytes).
    """

    def __init__(self, buf: Buffer, start: int, end: int) -> None:
        self.buf, self.p, self.end = buf, start, end

    def unsigned(self) -> int:
        if self.p >= self.end:
            raise BodyError("serialized field cut off")
        b0 = self.buf[self.p]
        n = 0
        while n < 8 and b0 & (1 << n):
            n += 1
        size = n + 1 if n < 8 else 9
        if self.p + size > self.end:
            raise BodyError("serialized field cut off")
        raw = int.from_bytes(self.buf[self.p : self.p + size], "little")
        self.p += size
        return raw >> 8 if n == 8 else raw >> (n + 1)

    def signed(self) -> int:
        v = self.unsigned()
        return (v >> 1) ^ -(v & 1)

    def string(self) -> bytes:
        n = self.unsigned()
        if self.p + n > self.end:
            raise BodyError("serialized string cut off")
        s = bytes(self.buf[self.p : self.p + n])
        self.p += n
        return s


def decode_tagged_gtid(buf: Buffer, start: int, end: int) -> MySQLGtidBody:
    """GTID_TAGGED_LOG_EVENT (MySQL 8.3+): a mysql::serialization message.

    Header: format version, serialized size, last non-ignorable field id; then
    (field id, value) pairs: 0 flags, 1 uuid (16 varlen bytes), 2 gno (signed),
    3 tag (string), 4 last_committed, 5 sequence_number (signed),
    6 immediate commit timestamp, 7 original commit timestamp (optional), ...
    """
    r = _Varlen(buf, start, end)
    r.unsigned()  # format version
    r.unsigned()  # serialized size
    r.unsigned()  # last non-ignorable field id
    uuid = b""
    gno = 0
    tag = ""
    immediate: int | None = None
    original: int | None = None
    while r.p < end:
        fid = r.unsigned()
        if fid == 0:
            r.unsigned()
        elif fid == 1:
            uuid = bytes(r.unsigned() & 0xFF for _ in range(16))
        elif fid == 2:
            gno = r.signed()
        elif fid == 3:
            tag = r.string().decode("ascii", "replace").lower()
        elif fid in (4, 5):
            r.signed()
        elif fid == 6:
            immediate = r.unsigned()
        elif fid == 7:
            original = r.unsigned()
        else:
            break  # later fields carry nothing the index needs
    if len(uuid) != 16 or gno <= 0:
        raise BodyError("tagged GTID event without a UUID or GNO")
    if original is None:
        original = immediate
    return MySQLGtidBody(format_uuid(uuid), tag, gno, immediate, original)


def decode_previous_gtids(
    buf: Buffer, start: int, end: int
) -> list[tuple[str, str, list[tuple[int, int]]]]:
    """PREVIOUS_GTIDS_LOG_EVENT -> [(uuid, tag, [(first, last), ...])].

    The 8-byte count is plain for untagged sets; MySQL 8.3+ tagged sets put the
    format (1) in its first and last byte and the count in the six between.
    """
    if end - start < 8:
        raise BodyError("previous-GTIDs event too short")
    (word,) = _U64.unpack_from(buf, start)
    tagged = (word & 0xFF) == 1 and (word >> 56) == 1
    n_sids = (word >> 8) & ((1 << 48) - 1) if tagged else word
    p = start + 8
    out: list[tuple[str, str, list[tuple[int, int]]]] = []
    for _ in range(n_sids):
        if end - p < 16:
            raise BodyError("previous-GTIDs event cut off")
        uuid = format_uuid(bytes(buf[p : p + 16]))
        p += 16
        tag = ""
        if tagged:
            r = _Varlen(buf, p, end)
            tag = r.string().decode("ascii", "replace").lower()
            p = r.p
        if end - p < 8:
            raise BodyError("previous-GTIDs event cut off")
        (n_iv,) = _U64.unpack_from(buf, p)
        p += 8
        if n_iv > (end - p) // 16:
            raise BodyError("previous-GTIDs event cut off")
        ivs = []
        for _ in range(n_iv):
            lo = _I64.unpack_from(buf, p)[0]
            hi = _I64.unpack_from(buf, p + 8)[0]
            p += 16
            if not 1 <= lo < hi:
                raise BodyError(f"previous-GTIDs event: bad interval {lo}-{hi}")
            ivs.append((lo, hi - 1))
        out.append((uuid, tag, ivs))
    return out


def decode_mariadb_gtid(buf: Buffer, start: int, end: int) -> tuple[int, int, int]:
    """MariaDB GTID_EVENT -> (seq_no, domain_id, flags2)."""
    if end - start < _MDB_GTID.size:
        raise BodyError("MariaDB GTID event too short")
    seq, domain, flags2 = _MDB_GTID.unpack_from(buf, start)
    return int(seq), int(domain), int(flags2)


def decode_gtid_list(buf: Buffer, start: int, end: int) -> list[tuple[int, int, int]]:
    """MariaDB GTID_LIST_EVENT -> [(domain, server_id, seq), ...] in written order."""
    if end - start < 4:
        raise BodyError("GTID list event too short")
    (word,) = _U32.unpack_from(buf, start)
    count = word & 0x0FFFFFFF
    if 4 + count * 16 > end - start:
        raise BodyError("GTID list event cut off")
    out: list[tuple[int, int, int]] = []
    for i in range(count):
        d, s, n = _MDB_ENTRY.unpack_from(buf, start + 4 + 16 * i)
        out.append((int(d), int(s), int(n)))
    return out


def query_text_head(buf: Buffer, start: int, end: int, post_header_len: int) -> bytes:
    """The first bytes of a QUERY event's statement, upper-cased (for BEGIN/COMMIT)."""
    if end - start < post_header_len or post_header_len < 11:
        raise BodyError("query event too short")
    db_len = buf[start + 8]
    status_len = _U16.unpack_from(buf, start + 11)[0] if post_header_len >= 13 else 0
    q = start + post_header_len + status_len + db_len + 1
    if q > end:
        raise BodyError("query event: status variables run past the event")
    return bytes(buf[q : min(end, q + 24)]).strip().upper()


def decode_rotate(buf: Buffer, start: int, end: int) -> tuple[int, str]:
    if end - start < 8:
        raise BodyError("rotate event too short")
    (position,) = _U64.unpack_from(buf, start)
    return int(position), bytes(buf[start + 8 : end]).decode("utf-8", "replace")


def _net_field_length(buf: Buffer, p: int, end: int) -> tuple[int, int]:
    """MySQL's length-encoded integer -> (value, next position)."""
    if p >= end:
        raise BodyError("length-encoded integer cut off")
    b = buf[p]
    if b < 251:
        return b, p + 1
    width = {252: 2, 253: 3, 254: 8}.get(b)
    if width is None or p + 1 + width > end:
        raise BodyError("bad length-encoded integer")
    return int.from_bytes(buf[p + 1 : p + 1 + width], "little"), p + 1 + width


@dataclass(frozen=True)
class TransactionPayload:
    """A MySQL 8 TRANSACTION_PAYLOAD_EVENT: a whole transaction, compressed."""

    compression: int  # 0 zstd, 255 none
    payload_size: int
    uncompressed_size: int
    #: (type code, size) of each inner event (they carry no checksum of their own)
    inner: tuple[tuple[int, int], ...]


#: refuse to inflate a payload beyond this (the server caps transactions far lower)
MAX_PAYLOAD_UNCOMPRESSED = 1 << 30


def decode_transaction_payload(buf: Buffer, start: int, end: int) -> TransactionPayload:
    """Decode the header fields and frame the inner events (zstd via ``zstandard``).

    Not used by the scan loop (it only needs the payload's boundary); for
    tools that want the inner events.
    """
    fields: dict[int, int] = {}
    p = start
    while True:
        ftype, p = _net_field_length(buf, p, end)
        if ftype == 0:  # end mark
            break
        flen, p = _net_field_length(buf, p, end)
        if p + flen > end:
            raise BodyError("payload header field cut off")
        value, _ = _net_field_length(buf, p, p + flen)
        fields[ftype] = value
        p += flen
    compression = fields.get(2, 255)
    size = fields.get(1, end - p)
    usize = fields.get(3, size)
    if p + size > end or usize > MAX_PAYLOAD_UNCOMPRESSED:
        raise BodyError("payload size beyond the event")
    data = bytes(buf[p : p + size])
    if compression == 0:
        import zstandard

        try:
            data = zstandard.ZstdDecompressor().decompress(data, max_output_size=usize)
        except zstandard.ZstdError as e:
            raise BodyError(f"payload does not decompress: {e}") from None
    elif compression != 255:
        raise BodyError(f"unknown payload compression {compression}")
    inner: list[tuple[int, int]] = []
    q = 0
    while q < len(data):
        if len(data) - q < 19:
            raise BodyError("inner event cut off")
        (isize,) = _U32.unpack_from(data, q + 9)
        if isize < 19 or q + isize > len(data):
            raise BodyError("inner event of impossible size")
        inner.append((data[q + 4], isize))
        q += isize
    return TransactionPayload(compression, size, usize, tuple(inner))
