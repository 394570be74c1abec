"""The single pass: framing, CRC32, SHA-256, GTIDs and the transaction index.

Memory is constant: the file is read in ``BLOCK``-sized reads into one reusable
buffer (hashed as read); an event larger than the buffer is streamed through
(CRC accumulated) keeping only its first 64 KiB.

The loop has two speeds. Row data, table maps and the other events that only
*belong* to a transaction (``_PASSIVE``) cost one 3-field unpack and one
``zlib.crc32`` over the event *including* its stored CRC, compared with the
CRC-32 residue constant, so the stored value is never unpacked. Everything else
(format description, GTIDs, queries, XIDs, rotate, unknown types, and every
event when a per-event callback is asked for) takes the general path
(``general.py``), which decodes the full header and dispatches to a body
handler (``state.py``). What the file comes to is ``verdict.py``'s.

After the first CRC mismatch event lengths can no longer be trusted, so a
framing problem past it ends the scan instead of raising.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Callable
from typing import BinaryIO

from shipper.binlog import bodies as B
from shipper.binlog import events as E
from shipper.binlog.checksum import CRC_RESIDUE
from shipper.binlog.general import BODY_ERRORS, PASSIVE, GeneralPath
from shipper.binlog.info import BinlogInfo, EventHeader
from shipper.binlog.state import HANDLERS, IN_TRX, NONE, STANDALONE
from shipper.binlog.verdict import verdict

BLOCK = 4 << 20
#: an event this large cannot be real (max_allowed_packet tops out at 1 GiB)
MAX_EVENT_SIZE = (1 << 30) + (1 << 20)
_BIG_PREFIX = 1 << 16


_FAST_HEADER = struct.Struct("<IBxxxxI")  # timestamp, type, size
_CRC = struct.Struct("<I")
_MDB_GTID = struct.Struct("<QIB")
_U32 = struct.Struct("<I")


#: the commonest events with a body to read: handled straight from the loop
_HOT = frozenset(
    {
        E.QUERY_EVENT,
        E.XID_EVENT,
        E.GTID_LOG_EVENT,
        E.ANONYMOUS_GTID_LOG_EVENT,
        E.MARIADB_GTID_EVENT,
    }
)
#: type code -> 1 passive (fast path), 2 hot body, 3 XID and 4 MariaDB GTID (inline),
#: 0 general path
_FAST_KIND = [
    1
    if t in PASSIVE
    else 3
    if t == E.XID_EVENT
    else 4
    if t == E.MARIADB_GTID_EVENT
    else 2
    if t in _HOT
    else 0
    for t in range(256)
]
_ALL_GENERAL = [0] * 256


class _Scanner(GeneralPath):
    """Reads, frames and checks; events decoded in full are GeneralPath's, the body
    handlers and their state ScanState's."""

    def __init__(
        self, f: BinaryIO, name: str, on_event: Callable[[EventHeader], None] | None
    ) -> None:
        super().__init__(name, on_event)
        self.f = f
        self.sha = hashlib.sha256()
        self.buf = bytearray(BLOCK)
        self.mv = memoryview(self.buf)
        self.avail = 0  # valid bytes in buf
        self.base = 0  # file offset of buf[0]
        self.total = 0
        self.eof = False

    # ------------------------------------------------------------------ input
    def _read_into(self, start: int) -> int:
        """Fill buf[start:] from the stream; returns bytes read (0 at EOF)."""
        got = 0
        end = len(self.buf)
        readinto = getattr(self.f, "readinto", None)
        while start + got < end:
            if readinto is not None:
                n = readinto(self.mv[start + got : end])
            else:  # a stream with read() only
                chunk = self.f.read(end - start - got)
                n = len(chunk)
                self.mv[start + got : start + got + n] = chunk
            if not n:
                self.eof = True
                break
            self.sha.update(self.mv[start + got : start + got + n])
            got += n
        self.total += got
        return got

    def _refill(self, keep_from: int) -> None:
        """Keep buf[keep_from:avail] (moved to the front), read more behind it."""
        rem = self.avail - keep_from
        if rem:
            self.buf[:rem] = self.buf[keep_from : self.avail]
        self.base += keep_from
        self.avail = rem + self._read_into(rem)

    # ------------------------------------------------------------------ main loop
    def run(self) -> BinlogInfo:
        self.avail = self._read_into(0)
        if self.avail < 4 or bytes(self.buf[:4]) != E.MAGIC:
            raise self._err(0, "no binlog magic (\\xfebin)")
        self._loop()
        # The verdict's size and sha256 are of the whole file, also when the scan
        # stopped early (framing past a CRC mismatch cannot be trusted).
        while not self.eof:
            self.base += self.avail
            self.avail = self._read_into(0)
        return verdict(self, self.name, self.total, self.sha.hexdigest())

    def _loop(self) -> None:
        pos = 4  # buffer offset of the next event
        buf, mv, avail = self.buf, self.mv, self.avail
        unpack = _FAST_HEADER.unpack_from
        crc32 = zlib.crc32
        residue = CRC_RESIDUE
        general = self._general
        handlers = HANDLERS
        kind = _ALL_GENERAL  # until the first format description is read
        crc_len, min_size, hl = self.crc_len, self.min_size, E.HEADER_LEN
        index = self.index
        ap_start, ap_end, ap_commit = index._start.append, index._end.append, index._commit.append
        ap_src, ap_seq = index._src.append, index._seq.append
        idle = True  # no transaction open (mirrors self.mode == NONE)
        mdb_unpack, u32 = _MDB_GTID.unpack_from, _U32.unpack_from
        mdb_sources, mdb_added = self.mdb_sources, self.mdb_added
        count = 0
        last_ts = 0
        last_type = -1
        while True:
            if avail - pos < E.HEADER_LEN:
                if not self.eof:
                    self._refill(pos)
                    pos = 0
                    buf, mv, avail = self.buf, self.mv, self.avail
                    continue
                if avail > pos:
                    self.truncated_at = self.base + pos
                break
            ts, typ, size = unpack(buf, pos)
            end = pos + size
            if end > avail or size < min_size:
                if size < min_size or size > MAX_EVENT_SIZE:
                    if self.crc_error_at is not None:
                        break  # lengths past a CRC mismatch are not to be trusted
                    if self._zero_tail(pos):
                        break  # pre-allocated or crashed file: truncated where the zeros start
                    raise self._err(self.base + pos, f"event of impossible size {size}")
                if not self.eof and size <= len(buf):
                    self._refill(pos)
                    pos = 0
                    buf, mv, avail = self.buf, self.mv, self.avail
                    continue
                if self.eof:
                    self.truncated_at = self.base + pos
                    break
                # larger than the buffer: stream it, keep its first bytes
                abs_pos = self.base + pos
                res = self._big_event(pos, size, crc_len)
                if res is None:
                    break
                prefix, crc_ok, pos = res
                buf, mv, avail = self.buf, self.mv, self.avail
                count += 1
                if ts:
                    last_ts = ts
                last_type = typ
                general(memoryview(prefix), 0, size, abs_pos, crc_ok)
                crc_len, min_size, hl = self.crc_len, self.min_size, self.header_len
                kind = self._kinds()
                idle = self.mode == NONE
                continue
            count += 1
            if ts:
                last_ts = ts
            last_type = typ
            k = kind[typ]
            if k == 1:
                if crc_len and crc32(mv[pos:end]) != residue and self.crc_error_at is None:
                    self.crc_error_at = self.base + pos
                if idle and self.prelude < 0:
                    self.prelude = self.base + pos
            elif k == 3:
                # XID: commits the open transaction (inline: the commonest closing event)
                if crc_len and crc32(mv[pos:end]) != residue:
                    if self.crc_error_at is None:
                        self.crc_error_at = self.base + pos
                elif not idle:
                    abs_end = self.base + end
                    start = self.trx_start
                    ap_start(start if start >= 0 else abs_end)
                    ap_end(abs_end)
                    commit = self.trx_commit_us
                    ap_commit(commit if commit >= 0 else ts * 1_000_000)
                    ap_src(self.trx_src)
                    ap_seq(self.trx_seq)
                    self.mode = NONE
                    self.trx_start = -1
                    self.prelude = -1
                    idle = True
            elif k == 4:
                # MariaDB GTID: opens a transaction (inline: one per transaction)
                abs_pos = self.base + pos
                if crc_len and crc32(mv[pos:end]) != residue:
                    if self.crc_error_at is None:
                        self.crc_error_at = abs_pos
                else:
                    if size - crc_len - hl < 13:
                        raise self._err(abs_pos, "Gtid event: MariaDB GTID event too short")
                    seq, domain, flags2 = mdb_unpack(buf, pos + hl)
                    key = (domain, u32(buf, pos + 5)[0])  # the header's server id
                    src = mdb_sources.get(key)
                    if src is None:
                        src = self._mariadb_source(key)
                    self.mode = STANDALONE if flags2 & B.MARIADB_FL_STANDALONE else IN_TRX
                    self.trx_start = abs_pos
                    self.prelude = -1
                    self.trx_src = src
                    self.trx_seq = seq
                    self.trx_commit_us = -1
                    if key != self.mdb_last_key:  # re-insert: most recent last
                        mdb_added.pop(key, None)
                        self.mdb_last_key = key
                    mdb_added[key] = seq
                    idle = False
            elif k == 2:
                abs_pos = self.base + pos
                if crc_len and crc32(mv[pos:end]) != residue:
                    if self.crc_error_at is None:
                        self.crc_error_at = abs_pos
                else:
                    try:
                        handlers[typ](
                            self, buf, pos, pos + hl, end - crc_len, ts, abs_pos, abs_pos + size
                        )
                    except BODY_ERRORS as e:
                        raise self._err(abs_pos, f"{E.event_name(typ)} event: {e}") from None
                    idle = self.mode == NONE
            else:
                general(mv, pos, size, self.base + pos, None)
                crc_len, min_size, hl = self.crc_len, self.min_size, self.header_len
                kind = self._kinds()
                idle = self.mode == NONE
            pos = end
        self.event_count = count
        # past START_ENCRYPTION the header bytes are ciphertext: its time is the last known
        self.last_ts = last_ts if self.encrypted_at is None else self.encryption_ts
        self.last_type = last_type

    def _zero_tail(self, pos: int) -> bool:
        """Whether everything from buffer offset ``pos`` to the end of the file is
        zero bytes (a pre-allocated file, or a crash after the size was extended);
        then the file is truncated there. Reads the rest of the stream."""
        if self.buf.count(0, pos, self.avail) != self.avail - pos:
            return False
        at = self.base + pos
        while not self.eof:
            self.base += self.avail
            self.avail = self._read_into(0)
            if self.buf.count(0, 0, self.avail) != self.avail:
                raise self._err(at, "zero bytes followed by data where an event should start")
        self.truncated_at = at
        return True

    def _kinds(self) -> list[int]:
        """Which events may skip the general path (none before the FDE, when
        encrypted, or when every event's header is asked for)."""
        if self.first or self.encrypted_at is not None or self.on_event is not None:
            return _ALL_GENERAL
        return _FAST_KIND

    def _big_event(
        self, pos: int, size: int, crc_len: int
    ) -> tuple[bytes, bool | None, int] | None:
        """Stream an event larger than the buffer. Returns (prefix, crc_ok, next pos) or None."""
        start_abs = self.base + pos
        covered = size - crc_len  # bytes under the CRC
        crc = 0
        prefix = bytearray()
        tail = bytearray()
        done = 0
        while done < size:
            if pos >= self.avail:
                self.base += self.avail
                self.avail = self._read_into(0)
                pos = 0
                if self.avail == 0:
                    self.truncated_at = start_abs
                    return None
            take = min(size - done, self.avail - pos)
            chunk = self.mv[pos : pos + take]
            if len(prefix) < _BIG_PREFIX:
                prefix += chunk[: _BIG_PREFIX - len(prefix)]
            in_crc = max(0, min(take, covered - done))
            if crc_len and in_crc:
                crc = zlib.crc32(chunk[:in_crc], crc)
            if take > in_crc:
                tail += chunk[in_crc:]
            done += take
            pos += take
        crc_ok = None
        if crc_len:
            crc_ok = crc == _CRC.unpack_from(tail, len(tail) - 4)[0]
        return bytes(prefix), crc_ok, pos
