"""The verdict of a scan: the state it ended with, turned into :class:`BinlogInfo`.

The GTID sets as text (the previous set, what the file added, and their
union: MariaDB's domain-server-sequence lists, MySQL's uuid:interval sets),
the last GTID, the checksum algorithm the first format description declared,
and whether the file is complete: closed by a ROTATE or STOP event that frames
exactly to its end, or -- when encrypted, where the closing event cannot be seen
-- closed by the server (in-use flag clear) and not truncated.

It runs once, after the loop; apart from the scanner because it only reads the
state (``state.py``) and nothing in it is about reading bytes.
"""

from __future__ import annotations

from shipper.binlog import events as E
from shipper.binlog.gtid import MariaDBGtidList, MariaDBGtidListBuilder, MySQLGtidSet
from shipper.binlog.info import BinlogInfo
from shipper.binlog.state import ScanState


def verdict(state: ScanState, name: str, size: int, sha256: str) -> BinlogInfo:
    """The :class:`BinlogInfo` of a finished scan of ``name`` (``size`` bytes, ``sha256``)."""
    fde = state.first_fde
    checksum: str | None = None
    if fde is not None and fde.checksum_alg is not None:
        checksum = "CRC32" if fde.checksum_alg == E.CHECKSUM_CRC32 else "NONE"
    prev = added = end = ""
    last_gtid: str | None = None
    if state.flavor == "mariadb":
        p = state.mdb_prev or MariaDBGtidList()
        b = MariaDBGtidListBuilder()
        for (d, s), n in state.mdb_added.items():
            b.add3(d, s, n)
        a = b.freeze()
        prev, added, end = str(p), str(a), str(p.union(a))
    elif state.flavor == "mysql":
        pm = state.mysql_prev or MySQLGtidSet()
        am = state.mysql_added.freeze()
        prev, added, end = str(pm), str(am), str(pm.union(am))
    if state.flavor == "mariadb" and state.mdb_last_key is not None:
        d, s = state.mdb_last_key
        last_gtid = f"{d}-{s}-{state.mdb_added[state.mdb_last_key]}"
    elif state.last_gtid is not None:
        last_gtid = f"{state.last_gtid[0]}:{state.last_gtid[1]}"
    index = state.index
    index.flavor = state.flavor
    # An encrypted file's closing event cannot be seen; one the server closed
    # (in-use flag clear) that frames exactly to its end counts as complete.
    if state.encrypted_at is not None:
        complete = state.truncated_at is None and not state.in_use
    else:
        complete = state.truncated_at is None and state.last_type in (
            E.ROTATE_EVENT,
            E.STOP_EVENT,
        )
    return BinlogInfo(
        name=name,
        size=size,
        sha256=sha256,
        server_version=fde.server_version if fde else None,
        binlog_version=fde.binlog_version if fde else None,
        checksum=checksum,
        server_id=state.server_id,
        in_use=state.in_use,
        complete=complete,
        truncated_at=state.truncated_at,
        crc_error_at=state.crc_error_at,
        checksum_flag_error_at=state.checksum_flag_error_at,
        event_count=state.event_count,
        first_timestamp=state.first_ts,
        last_timestamp=state.last_ts or None,
        gtid_previous=prev,
        gtid_added=added,
        gtid_executed_end=end,
        last_gtid=last_gtid,
        gtid_flavor=state.flavor,
        transactions=len(index),
        index=index,
        encrypted=state.encrypted_at is not None,
        encrypted_at=state.encrypted_at,
        unknown_event_types=tuple(sorted(state.unknown)),
        rotate_to=state.rotate_to if state.last_type == E.ROTATE_EVENT else None,
    )
