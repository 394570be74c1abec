"""What the scan keeps between events: transaction tracking, GTID state, and the
body handlers of the event types that carry them (``HANDLERS``).

:class:`~shipper.binlog.scanner._Scanner` frames events and calls a handler
with the event's body range; three of these (MariaDB GTID, XID, and the
passive events) are also done inline in its loop for speed, and must stay in
step with the versions here.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Literal

from shipper.binlog import bodies as B
from shipper.binlog import events as E
from shipper.binlog.gtid import (
    MariaDBGtidList,
    MariaDBGtidListBuilder,
    MySQLGtidSet,
    MySQLGtidSetBuilder,
    format_uuid,
)
from shipper.binlog.index import TransactionIndex

# transaction-tracking modes
NONE, AWAIT_FIRST_QUERY, IN_TRX, STANDALONE = 0, 1, 2, 3

_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_GTID_HEAD = struct.Struct("<B16sq")
_MDB_GTID = struct.Struct("<QIB")


class ScanState:
    """Per-file state of one scan and the handlers that update it."""

    def __init__(self) -> None:
        self.crc_len = 0
        self.min_size = E.HEADER_LEN
        self.header_len = E.HEADER_LEN
        self.first = True
        # results
        self.fde: B.FormatDescription | None = None
        self.first_fde: B.FormatDescription | None = None
        self.server_id: int | None = None
        self.first_ts: int | None = None
        self.in_use = False
        self.truncated_at: int | None = None
        self.crc_error_at: int | None = None
        self.checksum_flag_error_at: int | None = None
        self.event_count = 0
        self.last_ts = 0
        self.last_type = -1
        self.unknown: set[int] = set()
        self.encrypted_at: int | None = None
        self.encryption_ts = 0
        self.rotate_to: str | None = None
        # GTIDs
        self.flavor: Literal["mysql", "mariadb"] | None = None
        self.mysql_prev: MySQLGtidSet | None = None
        self.mysql_added = MySQLGtidSetBuilder()
        self.my_last_key: tuple[str, str] | None = None
        self.my_last_iv: list[int] = [0, 0]
        self.my_sources: dict[tuple[bytes, str], tuple[str, int]] = {}
        self.mdb_prev: MariaDBGtidList | None = None
        self.mdb_added: dict[tuple[int, int], int] = {}  # (domain, server) -> seq, recent last
        self.mdb_sources: dict[tuple[int, int], int] = {}
        self.mdb_last_key: tuple[int, int] | None = None
        self.last_gtid: tuple[str, int] | None = None  # MySQL; MariaDB's is mdb_last_key
        # transactions
        self.index = TransactionIndex()
        self.mode = NONE
        self.trx_start = -1
        self.prelude = -1
        self.trx_src = -1
        self.trx_seq = 0
        self.trx_commit_us = -1

    # ------------------------------------------------------------------ transactions
    def _close_trx(self, end_abs: int, ts: int) -> None:
        start = self.trx_start if self.trx_start >= 0 else end_abs
        commit = self.trx_commit_us if self.trx_commit_us >= 0 else ts * 1_000_000
        self.index.append_id(start, end_abs, commit, self.trx_src, self.trx_seq)
        self.mode = NONE
        self.trx_start = -1
        self.prelude = -1

    def _open_trx(self, abs_pos: int, mode: int) -> None:
        """A transaction without a GTID (BEGIN, or an autocommit statement)."""
        self.trx_start = self.prelude if self.prelude >= 0 else abs_pos
        self.prelude = -1
        self.mode = mode
        self.trx_src = -1
        self.trx_seq = 0
        self.trx_commit_us = -1

    def _begin_gtid_trx(self, abs_pos: int, mode: int, src: int, seq: int, commit: int) -> None:
        # a transaction still open here never committed in this file: dropped
        self.mode = mode
        self.trx_start = abs_pos
        self.prelude = -1
        self.trx_src = src
        self.trx_seq = seq
        self.trx_commit_us = commit

    def _query(self, begins: bool, ends: bool, ts: int, abs_pos: int, ev_end: int) -> None:
        mode = self.mode
        if mode == AWAIT_FIRST_QUERY:
            if begins:
                self.mode = IN_TRX
            else:
                self._close_trx(ev_end, ts)  # DDL (or XA COMMIT) under its own GTID
        elif mode == IN_TRX:
            if ends:
                self._close_trx(ev_end, ts)
        elif mode == STANDALONE:
            self._close_trx(ev_end, ts)
        elif begins:
            self._open_trx(abs_pos, IN_TRX)
        elif not ends:
            self._open_trx(abs_pos, NONE)  # autocommit statement: a transaction of its own
            self._close_trx(ev_end, ts)

    # ------------------------------------------------------------------ body handlers
    # (buf, body start, body end, timestamp, event offset, event size, server id)
    def _h_query(
        self, buf: B.Buffer, pos: int, body: int, end: int, ts: int, abs_pos: int, abs_end: int
    ) -> None:
        assert self.fde is not None
        phl = self.fde.post_header_len(E.QUERY_EVENT, 13 if self.fde.binlog_version >= 4 else 11)
        if end - body < phl or phl < 11:
            raise B.BodyError("query event too short")
        status_len = _U16.unpack_from(buf, body + 11)[0] if phl >= 13 else 0
        q = body + phl + status_len + buf[body + 8] + 1
        if q > end:
            raise B.BodyError("query event: status variables run past the event")
        text = bytes(buf[q : min(end, q + 24)]).strip().upper()
        self._query(
            text == b"BEGIN" or text.startswith(b"XA START"),
            text == b"COMMIT" or text == b"ROLLBACK",
            ts,
            abs_pos,
            abs_end,
        )

    def _h_other_query(
        self, buf: B.Buffer, pos: int, body: int, end: int, ts: int, abs_pos: int, abs_end: int
    ) -> None:
        # compressed query (MariaDB) or Execute_load_query: never BEGIN/COMMIT
        self._query(False, False, ts, abs_pos, abs_end)

    def _h_xid(
        self, buf: B.Buffer, pos: int, body: int, end: int, ts: int, abs_pos: int, abs_end: int
    ) -> None:
        if self.mode != NONE:
            self._close_trx(abs_end, ts)

    def _h_payload(
        self, buf: B.Buffer, pos: int, body: int, end: int, ts: int, abs_pos: int, abs_end: int
    ) -> None:
        # a compressed transaction: BEGIN..XID are inside, so it closes what its GTID opened
        if self.mode == NONE:
            self._open_trx(abs_pos, IN_TRX)
        self._close_trx(abs_end, ts)

    def _h_mysql_gtid(
        self, buf: B.Buffer, pos: int, body: int, end: int, ts: int, abs_pos: int, abs_end: int
    ) -> None:
        if end - body < _GTID_HEAD.size:
            raise B.BodyError("GTID event too short")
        _, raw, gno = _GTID_HEAD.unpack_from(buf, body)
        immediate = -1
        p = body + _GTID_HEAD.size
        if end - p >= 24 and buf[p] == B.LOGICAL_TIMESTAMP_TYPECODE:
            immediate = int.from_bytes(buf[p + 17 : p + 24], "little") & ((1 << 55) - 1)
        if gno <= 0:  # anonymous
            self._begin_gtid_trx(abs_pos, AWAIT_FIRST_QUERY, -1, 0, immediate)
            return
        self._mysql_gtid(bytes(raw), "", gno, immediate, abs_pos)

    def _h_tagged_gtid(
        self, buf: B.Buffer, pos: int, body: int, end: int, ts: int, abs_pos: int, abs_end: int
    ) -> None:
        g = B.decode_tagged_gtid(buf, body, end)
        raw = bytes.fromhex(g.uuid.replace("-", ""))
        self._mysql_gtid(
            raw,
            g.tag,
            g.gno,
            -1 if g.immediate_commit_us is None else g.immediate_commit_us,
            abs_pos,
        )

    def _mysql_gtid(self, raw: bytes, tag: str, gno: int, immediate: int, abs_pos: int) -> None:
        self.flavor = "mysql"
        cached = self.my_sources.get((raw, tag))
        if cached is None:
            uuid = format_uuid(raw)
            cached = (uuid, self.index.source_id(f"{uuid}:{tag}" if tag else uuid))
            self.my_sources[(raw, tag)] = cached
        uuid, src = cached
        self._begin_gtid_trx(abs_pos, AWAIT_FIRST_QUERY, src, gno, immediate)
        key = (uuid, tag)
        last = self.my_last_iv
        if key == self.my_last_key and gno == last[1] + 1:
            last[1] = gno  # the usual case: the next number of the same source
        else:
            self.mysql_added.add(uuid, tag, gno)
            self.my_last_key = key
            self.my_last_iv = self.mysql_added.last_interval(uuid, tag)
        self.last_gtid = (uuid if not tag else f"{uuid}:{tag}", gno)

    def _h_previous_gtids(
        self, buf: B.Buffer, pos: int, body: int, end: int, ts: int, abs_pos: int, abs_end: int
    ) -> None:
        sets = B.decode_previous_gtids(buf, body, end)
        if self.mysql_prev is None:
            b = MySQLGtidSetBuilder()
            for uuid, tag, ivs in sets:
                for lo, hi in ivs:
                    b.add_interval(uuid, tag, lo, hi)
            self.mysql_prev = b.freeze()
            self.flavor = self.flavor or "mysql"

    def _mariadb_source(self, key: tuple[int, int]) -> int:
        self.flavor = "mariadb"
        src = self.mdb_sources[key] = self.index.source_id(f"{key[0]}-{key[1]}")
        return src

    def _h_mariadb_gtid(
        self, buf: B.Buffer, pos: int, body: int, end: int, ts: int, abs_pos: int, abs_end: int
    ) -> None:
        """The general path's version of the loop's inline MariaDB GTID handling."""
        if end - body < _MDB_GTID.size:
            raise B.BodyError("MariaDB GTID event too short")
        seq, domain, flags2 = _MDB_GTID.unpack_from(buf, body)
        key = (domain, _U32.unpack_from(buf, pos + 5)[0])  # the header's server id
        src = self.mdb_sources.get(key)
        if src is None:
            src = self._mariadb_source(key)
        mode = STANDALONE if flags2 & B.MARIADB_FL_STANDALONE else IN_TRX
        self._begin_gtid_trx(abs_pos, mode, src, seq, -1)
        if key != self.mdb_last_key:  # re-insert: most recent last
            self.mdb_added.pop(key, None)
            self.mdb_last_key = key
        self.mdb_added[key] = seq

    def _h_gtid_list(
        self, buf: B.Buffer, pos: int, body: int, end: int, ts: int, abs_pos: int, abs_end: int
    ) -> None:
        entries = B.decode_gtid_list(buf, body, end)
        if self.mdb_prev is None:
            b = MariaDBGtidListBuilder()
            for d, s, n in entries:
                b.add3(d, s, n)
            self.mdb_prev = b.freeze()
            self.flavor = "mariadb"

    def _h_rotate(
        self, buf: B.Buffer, pos: int, body: int, end: int, ts: int, abs_pos: int, abs_end: int
    ) -> None:
        _, self.rotate_to = B.decode_rotate(buf, body, end)

    def _h_start_encryption(
        self, buf: B.Buffer, pos: int, body: int, end: int, ts: int, abs_pos: int, abs_end: int
    ) -> None:
        self.encrypted_at = abs_end
        self.encryption_ts = ts
        self.crc_len = 0
        # from here on every event takes the general path (which only frames it)
        self.min_size = E.HEADER_LEN

    def _h_nothing(
        self, buf: B.Buffer, pos: int, body: int, end: int, ts: int, abs_pos: int, abs_end: int
    ) -> None:
        pass

    # ------------------------------------------------------------------ result


#: (state, buf, event start in buf, body start, body end, timestamp, offset, end offset)
Handler = Callable[["ScanState", B.Buffer, int, int, int, int, int, int], None]

HANDLERS: dict[int, Handler] = {
    E.QUERY_EVENT: ScanState._h_query,
    E.QUERY_COMPRESSED_EVENT: ScanState._h_other_query,
    18: ScanState._h_other_query,  # Execute_load_query
    E.XID_EVENT: ScanState._h_xid,
    E.XA_PREPARE_LOG_EVENT: ScanState._h_xid,
    E.TRANSACTION_PAYLOAD_EVENT: ScanState._h_payload,
    E.GTID_LOG_EVENT: ScanState._h_mysql_gtid,
    E.ANONYMOUS_GTID_LOG_EVENT: ScanState._h_mysql_gtid,
    E.GTID_TAGGED_LOG_EVENT: ScanState._h_tagged_gtid,
    E.PREVIOUS_GTIDS_LOG_EVENT: ScanState._h_previous_gtids,
    E.MARIADB_GTID_EVENT: ScanState._h_mariadb_gtid,
    E.GTID_LIST_EVENT: ScanState._h_gtid_list,
    E.ROTATE_EVENT: ScanState._h_rotate,
    E.START_ENCRYPTION_EVENT: ScanState._h_start_encryption,
    E.FORMAT_DESCRIPTION_EVENT: ScanState._h_nothing,  # decoded before the CRC check
    E.START_EVENT_V3: ScanState._h_nothing,
}
