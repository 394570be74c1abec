"""The general path of the scan: an event decoded in full.

The scanner's loop (``scanner.py``) frames every event and takes the commonest
ones itself; every other event comes here (all of them before the first format
description, in an encrypted file, or when a per-event callback is asked for).
Here its whole header is decoded; the first event must be a format description,
which sets the checksum and header lengths every later event is framed with (a
"no checksums" flag that the events after it deny is not believed:
``checksum.denies_crc32``); the CRC is checked; ``on_event`` gets the
:class:`EventHeader`; and the body goes to its handler in ``state.py``.

It is apart from the loop because the loop is built for speed (locals, inlined
events, one function) and this is built to be read: what the format says an
event means. ``PASSIVE`` (events that only belong to the transaction around
them) and ``BODY_ERRORS`` (what a malformed body raises) are shared by both.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

from shipper.binlog import bodies as B
from shipper.binlog import events as E
from shipper.binlog.checksum import CRC_RESIDUE, denies_crc32, fde_crc_ok
from shipper.binlog.info import BinlogFramingError, EventHeader
from shipper.binlog.state import HANDLERS, NONE, ScanState

_HEADER = struct.Struct("<IBIIIH")  # timestamp, type, server_id, size, log_pos, flags

#: events that only belong to the transaction around them (or open an autocommit
#: statement's): no body is read
PASSIVE = frozenset(E.EVENT_NAMES) - {
    E.UNKNOWN_EVENT,
    E.START_EVENT_V3,
    E.QUERY_EVENT,
    E.STOP_EVENT,
    E.ROTATE_EVENT,
    E.FORMAT_DESCRIPTION_EVENT,
    E.XID_EVENT,
    18,  # Execute_load_query: ends an autocommit LOAD DATA
    E.INCIDENT_EVENT,
    E.HEARTBEAT_LOG_EVENT,
    E.IGNORABLE_LOG_EVENT,
    E.GTID_LOG_EVENT,
    E.ANONYMOUS_GTID_LOG_EVENT,
    E.PREVIOUS_GTIDS_LOG_EVENT,
    E.XA_PREPARE_LOG_EVENT,
    E.TRANSACTION_PAYLOAD_EVENT,
    41,  # Heartbeat_v2
    E.GTID_TAGGED_LOG_EVENT,
    E.BINLOG_CHECKPOINT_EVENT,
    E.MARIADB_GTID_EVENT,
    E.GTID_LIST_EVENT,
    E.START_ENCRYPTION_EVENT,
    E.QUERY_COMPRESSED_EVENT,
}

BODY_ERRORS = (B.BodyError, struct.error, IndexError, ValueError, OverflowError)


class GeneralPath(ScanState):
    """Decodes one event in full (:meth:`_general`); the scanner frames and feeds it."""

    #: the scanner's read buffer and how much of it holds data: a format description
    #: looks at the events after it, as far as they have been read
    buf: bytearray
    avail: int

    def __init__(self, name: str, on_event: Callable[[EventHeader], None] | None) -> None:
        super().__init__()
        self.name = name
        self.on_event = on_event

    def _err(self, offset: int, what: str) -> BinlogFramingError:
        return BinlogFramingError(self.name, offset, what)

    def _general(
        self, buf: memoryview, pos: int, size: int, abs_pos: int, big_crc: bool | None
    ) -> None:
        """One event the fast path does not take. ``buf[pos:]`` holds it (or its prefix)."""
        ts, typ, sid, _, log_pos, flags = _HEADER.unpack_from(buf, pos)
        whole = pos + size <= len(buf)  # False for a streamed event's prefix
        if self.encrypted_at is not None:
            # Only the length (offset 9) is in clear; type, time, server id and
            # the CRC are encrypted with the body: count and pass over.
            if self.on_event is not None:
                self.on_event(EventHeader(abs_pos, abs_pos + size, 0, 0, -1, 0, size, 0, None))
            return
        if self.first:
            if typ not in (E.FORMAT_DESCRIPTION_EVENT, E.START_EVENT_V3):
                raise self._err(abs_pos, f"first event is type {typ}, not a format description")
            self.first = False
            self.first_ts = ts or None
            self.server_id = sid
            self.in_use = bool(flags & E.LOG_EVENT_BINLOG_IN_USE_F)
        crc_ok: bool | None = None
        if typ == E.FORMAT_DESCRIPTION_EVENT or typ == E.START_EVENT_V3:
            if not whole:
                raise self._err(abs_pos, f"format description event of {size} bytes")
            crc_ok = self._format_description(buf, pos, pos + size, typ, abs_pos)
        elif not whole:
            crc_ok = big_crc
        elif self.crc_len:
            crc_ok = zlib.crc32(buf[pos : pos + size]) == CRC_RESIDUE
        if crc_ok is False and self.crc_error_at is None:
            self.crc_error_at = abs_pos
        if self.on_event is not None:
            self.on_event(
                EventHeader(abs_pos, abs_pos + size, log_pos, ts, typ, sid, size, flags, crc_ok)
            )
        if crc_ok is False:
            return  # a body that failed its CRC is not read
        handler = HANDLERS.get(typ)
        if handler is not None:
            end = pos + size - self.crc_len if whole else len(buf)
            try:
                handler(self, buf, pos, pos + self.header_len, end, ts, abs_pos, abs_pos + size)
            except BODY_ERRORS as e:
                raise self._err(abs_pos, f"{E.event_name(typ)} event: {e}") from None
        elif typ not in E.EVENT_NAMES:
            self.unknown.add(typ)
        elif typ in PASSIVE and self.mode == NONE and self.prelude < 0:
            self.prelude = abs_pos

    def _format_description(
        self, buf: memoryview, pos: int, end: int, typ: int, abs_pos: int
    ) -> bool | None:
        v3 = typ == E.START_EVENT_V3
        try:
            fde = B.decode_fde(buf, pos + E.HEADER_LEN, end, v3)
        except BODY_ERRORS as e:
            raise self._err(abs_pos, str(e)) from None
        if fde.checksum_alg not in (None, E.CHECKSUM_OFF, E.CHECKSUM_CRC32, E.CHECKSUM_UNDEF):
            raise self._err(abs_pos, f"unknown checksum algorithm {fde.checksum_alg}")
        self.fde = fde
        if self.first_fde is None:
            self.first_fde = fde
        avail = self.avail if buf.obj is self.buf else len(buf)
        denied = fde.checksum_alg == E.CHECKSUM_OFF and denies_crc32(buf, pos, end, avail)
        if denied and self.checksum_flag_error_at is None:
            self.checksum_flag_error_at = abs_pos
        # every later FDE (relay logs) governs the events after it; one that denies
        # the checksums its events carry is not believed, so they are still checked
        self.crc_len = 4 if fde.checksum_alg == E.CHECKSUM_CRC32 or denied else 0
        self.min_size = fde.header_len + self.crc_len
        self.header_len = fde.header_len
        if fde.checksum_alg != E.CHECKSUM_CRC32:
            return None
        return fde_crc_ok(buf, pos, end)
