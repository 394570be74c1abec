"""One streaming pass over a binlog: framing, CRC32, SHA-256, GTIDs, transactions.

Memory is constant: the file is read in 4 MiB blocks into one reusable buffer;
an event larger than a block is streamed through (CRC accumulated) keeping only
its first bytes. Only the bodies of the event types listed in ``_DECODED`` are
looked at; every other event costs a header unpack and a ``zlib.crc32``.

Problems the pipeline must *flag* are reported in :class:`BinlogInfo`
(``truncated_at``, ``crc_error_at``, ``in_use``, ``complete``); bytes that are
not a binlog at all raise :class:`~shipper.errors.BinlogFormatError`. After the
first CRC mismatch the event lengths can no longer be trusted, so a framing
problem past it ends the scan instead of raising.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Literal, NamedTuple

from shipper.binlog import bodies as B
from shipper.binlog import events as E
from shipper.binlog.gtid import (
    MariaDBGtidList,
    MariaDBGtidListBuilder,
    MySQLGtidSet,
    MySQLGtidSetBuilder,
)
from shipper.binlog.index import TransactionIndex
from shipper.errors import BinlogFormatError

BLOCK = 4 << 20
#: an event this large cannot be real (max_allowed_packet tops out at 1 GiB)
MAX_EVENT_SIZE = (1 << 30) + (1 << 20)
_BIG_PREFIX = 1 << 16

_HEADER = struct.Struct("<IBIIIH")  # timestamp, type, server_id, size, log_pos, flags
_CRC = struct.Struct("<I")


class BinlogFramingError(BinlogFormatError):
    """The bytes at ``offset`` of ``name`` cannot be read as a binlog event."""

    def __init__(self, name: str, offset: int, reason: str) -> None:
        super().__init__(f"{name}: not a readable binlog at offset {offset}: {reason}")
        self.name = name
        self.offset = offset
        self.reason = reason


Status = Literal["complete", "in_use", "not_closed", "truncated", "crc_mismatch"]


class EventHeader(NamedTuple):
    """The common header of one event, where it sits, and whether its CRC verified."""

    pos: int
    end_pos: int  # pos + size: the byte after this event in *this* file
    log_pos: int  # the header's end_log_pos (the source's position in relay logs)
    timestamp: int
    type_code: int
    server_id: int
    size: int
    flags: int
    crc_ok: bool | None  # None: the file has no checksums (or the event is encrypted)

    @property
    def type_name(self) -> str:
        return E.event_name(self.type_code)


@dataclass(frozen=True)
class BinlogInfo:
    """What one pass over a binlog file found. See :attr:`status` for the verdict."""

    name: str
    size: int
    sha256: str
    server_version: str | None
    binlog_version: int | None
    checksum: str | None  # "CRC32", "NONE", or None before checksums existed (pre-5.6)
    server_id: int | None
    in_use: bool
    complete: bool
    truncated_at: int | None
    crc_error_at: int | None
    event_count: int
    first_timestamp: int | None
    last_timestamp: int | None
    gtid_previous: str
    gtid_added: str
    gtid_executed_end: str
    last_gtid: str | None
    gtid_flavor: Literal["mysql", "mariadb"] | None
    transactions: int
    index: TransactionIndex
    encrypted: bool
    encrypted_at: int | None
    unknown_event_types: tuple[int, ...]
    rotate_to: str | None  # the next file named by a final ROTATE

    @property
    def status(self) -> Status:
        """One word for the file, by precedence (first that applies):

        1. ``crc_mismatch`` - an event's CRC32 did not verify (``crc_error_at``)
        2. ``truncated``    - the last event is cut off (``truncated_at``)
        3. ``complete``     - the last event is ROTATE or STOP
        4. ``in_use``       - no closing event and the FDE's in-use flag is set:
                              the server had it open (live file, or a crash)
        5. ``not_closed``   - no closing event and the flag is clear
        An encrypted file (MariaDB ``encrypt_binlog``) is framed past its
        START_ENCRYPTION event by the event lengths (the only clear field) but
        nothing else is read or verified; it is ``complete`` when it frames to
        its end and the in-use flag is clear.
        """
        if self.crc_error_at is not None:
            return "crc_mismatch"
        if self.truncated_at is not None:
            return "truncated"
        if self.complete:
            return "complete"
        return "in_use" if self.in_use else "not_closed"

    def gtid_set_previous(self) -> MySQLGtidSet | MariaDBGtidList:
        return _parse(self.gtid_flavor, self.gtid_previous)

    def gtid_set_end(self) -> MySQLGtidSet | MariaDBGtidList:
        return _parse(self.gtid_flavor, self.gtid_executed_end)


def _parse(flavor: str | None, text: str) -> MySQLGtidSet | MariaDBGtidList:
    return MariaDBGtidList.parse(text) if flavor == "mariadb" else MySQLGtidSet.parse(text)


def scan_file(
    path: str | os.PathLike[str], *, on_event: Callable[[EventHeader], None] | None = None
) -> BinlogInfo:
    """Scan the binlog at ``path`` (one pass, constant memory)."""
    with open(path, "rb", buffering=0) as f:
        return scan_stream(f, name=os.path.basename(os.fspath(path)), on_event=on_event)


def scan_stream(
    f: BinaryIO, name: str = "<stream>", *, on_event: Callable[[EventHeader], None] | None = None
) -> BinlogInfo:
    """Scan a binary file object positioned at the start of a binlog.

    ``on_event`` (optional) is called with every event's :class:`EventHeader`.
    """
    return _Scanner(f, name, on_event).run()


def read_events(path: str | os.PathLike[str]) -> tuple[BinlogInfo, list[EventHeader]]:
    """Scan ``path`` and also return every event header (for ``inspect --events``)."""
    out: list[EventHeader] = []
    info = scan_file(path, on_event=out.append)
    return info, out


# transaction-tracking modes
_NONE, _AWAIT_FIRST_QUERY, _IN_TRX, _STANDALONE = 0, 1, 2, 3

_DECODED = frozenset(
    {
        E.QUERY_EVENT,
        E.STOP_EVENT,
        E.ROTATE_EVENT,
        E.XID_EVENT,
        E.FORMAT_DESCRIPTION_EVENT,
        E.START_EVENT_V3,
        E.GTID_LOG_EVENT,
        E.ANONYMOUS_GTID_LOG_EVENT,
        E.PREVIOUS_GTIDS_LOG_EVENT,
        E.GTID_TAGGED_LOG_EVENT,
        E.XA_PREPARE_LOG_EVENT,
        E.TRANSACTION_PAYLOAD_EVENT,
        E.MARIADB_GTID_EVENT,
        E.GTID_LIST_EVENT,
        E.START_ENCRYPTION_EVENT,
        E.QUERY_COMPRESSED_EVENT,
        E.BINLOG_CHECKPOINT_EVENT,
        E.HEARTBEAT_LOG_EVENT,
        E.INCIDENT_EVENT,
        E.IGNORABLE_LOG_EVENT,
        E.UNKNOWN_EVENT,
    }
)
#: events that belong to no transaction (do not open one)
_FILE_LEVEL = frozenset(
    {
        E.STOP_EVENT,
        E.ROTATE_EVENT,
        E.FORMAT_DESCRIPTION_EVENT,
        E.START_EVENT_V3,
        E.PREVIOUS_GTIDS_LOG_EVENT,
        E.GTID_LIST_EVENT,
        E.BINLOG_CHECKPOINT_EVENT,
        E.START_ENCRYPTION_EVENT,
        E.HEARTBEAT_LOG_EVENT,
        E.INCIDENT_EVENT,
        E.IGNORABLE_LOG_EVENT,
        E.UNKNOWN_EVENT,
    }
)


class _Scanner:
    def __init__(
        self, f: BinaryIO, name: str, on_event: Callable[[EventHeader], None] | None
    ) -> None:
        self.f = f
        self.name = name
        self.on_event = on_event
        self.sha = hashlib.sha256()
        self.buf = bytearray(BLOCK)
        self.mv = memoryview(self.buf)
        self.avail = 0  # valid bytes in buf
        self.base = 0  # file offset of buf[0]
        self.total = 0
        self.eof = False
        # results
        self.fde: B.FormatDescription | None = None
        self.first_fde: B.FormatDescription | None = None
        self.server_id: int | None = None
        self.in_use = False
        self.truncated_at: int | None = None
        self.crc_error_at: int | None = None
        self.event_count = 0
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.last_type: int | None = None
        self.unknown: set[int] = set()
        self.encrypted_at: int | None = None
        self.rotate_to: str | None = None
        # GTIDs
        self.flavor: Literal["mysql", "mariadb"] | None = None
        self.mysql_prev: MySQLGtidSet | None = None
        self.mysql_added = MySQLGtidSetBuilder()
        self.mdb_prev: MariaDBGtidList | None = None
        self.mdb_added = MariaDBGtidListBuilder()
        self.last_gtid: str | None = None
        # transactions
        self.index_rows: list[tuple[int, int, int, str | None, int]] = []
        self.mode = _NONE
        self.trx_start = -1
        self.prelude = -1
        self.trx_src: str | None = None
        self.trx_seq = 0
        self.trx_commit_us: int | None = None

    # ------------------------------------------------------------------ input
    def _err(self, offset: int, what: str) -> BinlogFramingError:
        return BinlogFramingError(self.name, offset, what)

    def _read_into(self, start: int) -> int:
        """Fill buf[start:] from the stream; returns bytes read (0 at EOF)."""
        got = 0
        end = len(self.buf)
        while start + got < end:
            n = self.f.readinto(self.mv[start + got : end])  # type: ignore[attr-defined]
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
        pos = 4  # buffer offset of the next event
        header = _HEADER
        unpack_header = header.unpack_from
        crc32 = zlib.crc32
        unpack_crc = _CRC.unpack_from
        decoded = _DECODED
        file_level = _FILE_LEVEL
        on_event = self.on_event
        first = True
        encrypted = False
        crc_len = 0
        min_size = E.HEADER_LEN
        while True:
            avail = self.avail
            if avail - pos < E.HEADER_LEN:
                if not self.eof:
                    self._refill(pos)
                    pos = 0
                    continue
                if avail > pos:
                    self.truncated_at = self.base + pos
                break
            ts, typ, sid, size, log_pos, flags = unpack_header(self.buf, pos)
            if size < min_size or size > MAX_EVENT_SIZE:
                if self.crc_error_at is not None:
                    break  # lengths past a CRC mismatch are not to be trusted
                raise self._err(self.base + pos, f"event of impossible size {size}")
            end = pos + size
            big_prefix: bytes | None = None
            if end > avail:
                if not self.eof and size <= len(self.buf):
                    self._refill(pos)
                    pos = 0
                    continue
                if self.eof:
                    self.truncated_at = self.base + pos
                    break
                # larger than the buffer: stream it, keep its first bytes
                res = self._big_event(pos, size, crc_len)
                if res is None:
                    break
                big_prefix, crc_ok_big, pos = res
            abs_pos = self.base + pos if big_prefix is None else self._big_abs
            if encrypted:
                # Only the length (offset 9) is in clear; type, time, server id and
                # the CRC are encrypted with the body: count and pass over.
                self.event_count += 1
                if on_event is not None:
                    on_event(EventHeader(abs_pos, abs_pos + size, 0, 0, -1, 0, size, 0, None))
                if big_prefix is None:
                    pos = end
                continue
            if first:
                if typ not in (E.FORMAT_DESCRIPTION_EVENT, E.START_EVENT_V3):
                    raise self._err(abs_pos, f"first event is type {typ}, not a format description")
                self.first_ts = ts or None
                self.server_id = sid
                self.in_use = bool(flags & E.LOG_EVENT_BINLOG_IN_USE_F)
            # --- checksum
            crc_ok: bool | None = None
            if typ == E.FORMAT_DESCRIPTION_EVENT or typ == E.START_EVENT_V3:
                if big_prefix is None:
                    crc_ok = self._format_description(self.mv, pos, end, typ, abs_pos)
                elif len(big_prefix) == size:
                    crc_ok = self._format_description(memoryview(big_prefix), 0, size, typ, abs_pos)
                else:
                    raise self._err(abs_pos, f"format description event of {size} bytes")
                crc_len = 4 if self.fde is not None and self.fde.checksum_alg == 1 else 0
                min_size = (self.fde.header_len if self.fde else E.HEADER_LEN) + crc_len
            elif big_prefix is not None:
                crc_ok = crc_ok_big
            elif crc_len:
                crc_ok = crc32(self.mv[pos : end - 4]) == unpack_crc(self.buf, end - 4)[0]
            if crc_ok is False and self.crc_error_at is None:
                self.crc_error_at = abs_pos
            first = False
            self.event_count += 1
            if ts:
                self.last_ts = ts
            self.last_type = typ
            if on_event is not None:
                on_event(
                    EventHeader(abs_pos, abs_pos + size, log_pos, ts, typ, sid, size, flags, crc_ok)
                )
            # --- bodies
            if typ in decoded:
                if crc_ok is not False:
                    self._cur_server_id = sid
                    hl = self.fde.header_len if self.fde else E.HEADER_LEN
                    if big_prefix is not None:
                        body_end = min(len(big_prefix), size - crc_len)
                        self._decode(big_prefix, 0, hl, body_end, typ, ts, abs_pos, size)
                    else:
                        self._decode(self.buf, pos, pos + hl, end - crc_len, typ, ts, abs_pos, size)
                    if self.encrypted_at is not None:
                        encrypted = True
                        crc_len = 0
            elif typ not in E.EVENT_NAMES:
                self.unknown.add(typ)
            elif self.mode == _NONE and self.prelude < 0 and typ not in file_level:
                self.prelude = abs_pos
            if big_prefix is None:
                pos = end
        return self._result()

    _big_abs = 0

    def _big_event(
        self, pos: int, size: int, crc_len: int
    ) -> tuple[bytes, bool | None, int] | None:
        """Stream an event larger than the buffer. Returns (prefix, crc_ok, next pos) or None."""
        self._big_abs = self.base + pos
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
                    self.truncated_at = self._big_abs
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
        # the prefix is a truncated body: decode sees it as the whole event
        return bytes(prefix), crc_ok, pos

    # ------------------------------------------------------------------ bodies
    def _format_description(
        self, buf: memoryview, pos: int, end: int, typ: int, abs_pos: int
    ) -> bool | None:
        v3 = typ == E.START_EVENT_V3
        try:
            fde = B.decode_fde(buf, pos + E.HEADER_LEN, end, v3)
        except (B.BodyError, struct.error, IndexError) as e:
            raise self._err(abs_pos, str(e)) from None
        self.fde = fde
        if self.first_fde is None:
            self.first_fde = fde
        if fde.checksum_alg not in (None, E.CHECKSUM_OFF, E.CHECKSUM_CRC32, E.CHECKSUM_UNDEF):
            raise self._err(abs_pos, f"unknown checksum algorithm {fde.checksum_alg}")
        if fde.checksum_alg != E.CHECKSUM_CRC32:
            return None
        # The CRC of a FDE is computed with the in-use flag clear: the server
        # clears that flag in place when it closes the file without rewriting it.
        head = bytearray(buf[pos : pos + E.HEADER_LEN])
        head[17] &= ~E.LOG_EVENT_BINLOG_IN_USE_F & 0xFF
        crc = zlib.crc32(buf[pos + E.HEADER_LEN : end - 4], zlib.crc32(head))
        return bool(crc == _CRC.unpack_from(buf, end - 4)[0])

    def _decode(
        self,
        buf: B.Buffer,
        pos: int,
        body: int,
        end: int,
        typ: int,
        ts: int,
        abs_pos: int,
        size: int,
    ) -> None:
        try:
            self._decode_body(buf, body, end, typ, ts, abs_pos, size)
        except (B.BodyError, struct.error, IndexError, ValueError, OverflowError) as e:
            raise self._err(abs_pos, f"{E.event_name(typ)} event: {e}") from None

    def _close_trx(self, end_abs: int, ts: int) -> None:
        start = self.trx_start if self.trx_start >= 0 else end_abs
        commit = self.trx_commit_us if self.trx_commit_us is not None else ts * 1_000_000
        self.index_rows.append((start, end_abs, commit, self.trx_src, self.trx_seq))
        self.mode = _NONE
        self.trx_start = -1
        self.prelude = -1
        self.trx_src = None
        self.trx_seq = 0
        self.trx_commit_us = None

    def _open_trx(self, abs_pos: int, mode: int) -> None:
        self.trx_start = self.prelude if self.prelude >= 0 else abs_pos
        self.prelude = -1
        self.mode = mode

    def _decode_body(
        self, buf: B.Buffer, body: int, end: int, typ: int, ts: int, abs_pos: int, size: int
    ) -> None:
        ev_end = abs_pos + size
        if typ == E.QUERY_EVENT:
            assert self.fde is not None
            default = 13 if self.fde.binlog_version >= 4 else 11
            phl = self.fde.post_header_len(E.QUERY_EVENT, default)
            head = B.query_text_head(buf, body, end, phl)
            self._query(head, ts, abs_pos, ev_end)
        elif typ == E.QUERY_COMPRESSED_EVENT:
            self._query(b"", ts, abs_pos, ev_end)
        elif typ == E.XID_EVENT or typ == E.XA_PREPARE_LOG_EVENT:
            if self.mode != _NONE:
                self._close_trx(ev_end, ts)
        elif typ == E.TRANSACTION_PAYLOAD_EVENT:
            if self.mode == _NONE:
                self._open_trx(abs_pos, _IN_TRX)
            self._close_trx(ev_end, ts)
        elif typ in (E.GTID_LOG_EVENT, E.ANONYMOUS_GTID_LOG_EVENT, E.GTID_TAGGED_LOG_EVENT):
            g = (
                B.decode_tagged_gtid(buf, body, end)
                if typ == E.GTID_TAGGED_LOG_EVENT
                else B.decode_mysql_gtid(buf, body, end)
            )
            self._abandon_trx()
            self.mode = _AWAIT_FIRST_QUERY
            self.trx_start = abs_pos
            self.prelude = -1
            self.trx_commit_us = g.immediate_commit_us
            if typ != E.ANONYMOUS_GTID_LOG_EVENT and g.gno > 0:
                self.flavor = "mysql"
                src = f"{g.uuid}:{g.tag}" if g.tag else g.uuid
                self.trx_src, self.trx_seq = src, g.gno
                self.mysql_added.add(g.uuid, g.tag, g.gno)
                self.last_gtid = f"{src}:{g.gno}"
        elif typ == E.PREVIOUS_GTIDS_LOG_EVENT:
            sets = B.decode_previous_gtids(buf, body, end)
            if self.mysql_prev is None:
                b = MySQLGtidSetBuilder()
                for uuid, tag, ivs in sets:
                    for lo, hi in ivs:
                        b.add_interval(uuid, tag, lo, hi)
                self.mysql_prev = b.freeze()
                self.flavor = self.flavor or "mysql"
        elif typ == E.MARIADB_GTID_EVENT:
            seq, domain, flags2 = B.decode_mariadb_gtid(buf, body, end)
            assert self.server_id is not None
            self._abandon_trx()
            self.flavor = "mariadb"
            self.mode = _STANDALONE if flags2 & B.MARIADB_FL_STANDALONE else _IN_TRX
            self.trx_start = abs_pos
            self.prelude = -1
            # the GTID's server id is the event header's
            sid = self._cur_server_id
            self.trx_src, self.trx_seq = f"{domain}-{sid}", seq
            self.mdb_added.add3(domain, sid, seq)
            self.last_gtid = f"{domain}-{sid}-{seq}"
        elif typ == E.GTID_LIST_EVENT:
            entries = B.decode_gtid_list(buf, body, end)
            if self.mdb_prev is None:
                b2 = MariaDBGtidListBuilder()
                for d, s, n in entries:
                    b2.add3(d, s, n)
                self.mdb_prev = b2.freeze()
                self.flavor = "mariadb"
        elif typ == E.ROTATE_EVENT:
            _, self.rotate_to = B.decode_rotate(buf, body, end)
        elif typ == E.START_ENCRYPTION_EVENT:
            self.encrypted_at = ev_end
        elif typ == E.FORMAT_DESCRIPTION_EVENT or typ == E.START_EVENT_V3:
            pass

    _cur_server_id = 0

    def _abandon_trx(self) -> None:
        """A new GTID while a transaction is open: the open one never committed here."""
        self.mode = _NONE
        self.trx_start = -1
        self.trx_src = None
        self.trx_seq = 0
        self.trx_commit_us = None

    def _query(self, head: bytes, ts: int, abs_pos: int, ev_end: int) -> None:
        begins = head == b"BEGIN" or head.startswith(b"XA START")
        ends = head in (b"COMMIT", b"ROLLBACK")
        mode = self.mode
        if mode == _AWAIT_FIRST_QUERY:
            if begins:
                self.mode = _IN_TRX
            else:
                self._close_trx(ev_end, ts)  # DDL (or XA COMMIT) under its own GTID
        elif mode == _IN_TRX:
            if ends:
                self._close_trx(ev_end, ts)
        elif mode == _STANDALONE:
            self._close_trx(ev_end, ts)
        elif begins:
            self._open_trx(abs_pos, _IN_TRX)
        elif not ends:
            self._open_trx(abs_pos, _NONE)  # autocommit statement: a transaction of its own
            self._close_trx(ev_end, ts)

    # ------------------------------------------------------------------ result
    def _result(self) -> BinlogInfo:
        fde = self.first_fde
        checksum: str | None = None
        if fde is not None and fde.checksum_alg is not None:
            checksum = "CRC32" if fde.checksum_alg == E.CHECKSUM_CRC32 else "NONE"
        prev: str = ""
        added: str = ""
        end: str = ""
        if self.flavor == "mariadb":
            p = self.mdb_prev or MariaDBGtidList()
            a = self.mdb_added.freeze()
            prev, added, end = str(p), str(a), str(p.union(a))
        elif self.flavor == "mysql":
            pm = self.mysql_prev or MySQLGtidSet()
            am = self.mysql_added.freeze()
            prev, added, end = str(pm), str(am), str(pm.union(am))
        index = TransactionIndex(self.flavor)
        for row in self.index_rows:
            index.append(*row)
        # An encrypted file's closing event cannot be seen; one the server closed
        # (in-use flag clear) that frames exactly to its end counts as complete.
        if self.encrypted_at is not None:
            complete = self.truncated_at is None and not self.in_use
        else:
            complete = self.truncated_at is None and self.last_type in (
                E.ROTATE_EVENT,
                E.STOP_EVENT,
            )
        return BinlogInfo(
            name=self.name,
            size=self.total,
            sha256=self.sha.hexdigest(),
            server_version=fde.server_version if fde else None,
            binlog_version=fde.binlog_version if fde else None,
            checksum=checksum,
            server_id=self.server_id,
            in_use=self.in_use,
            complete=complete,
            truncated_at=self.truncated_at,
            crc_error_at=self.crc_error_at,
            event_count=self.event_count,
            first_timestamp=self.first_ts,
            last_timestamp=self.last_ts,
            gtid_previous=prev,
            gtid_added=added,
            gtid_executed_end=end,
            last_gtid=self.last_gtid,
            gtid_flavor=self.flavor,
            transactions=len(index),
            index=index,
            encrypted=self.encrypted_at is not None,
            encrypted_at=self.encrypted_at,
            unknown_event_types=tuple(sorted(self.unknown)),
            rotate_to=self.rotate_to if self.last_type == E.ROTATE_EVENT else None,
        )
