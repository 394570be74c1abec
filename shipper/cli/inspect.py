"""``binlog-shipper inspect FILE``: what is inside one binlog file.

``--json`` prints one JSON object (the contract other tools read); ``--events``
adds every event's header. Times are RFC 3339 UTC strings; the raw header values
are kept only under names that say they are epoch numbers (``*_epoch``, ``*_epoch_us``).
Without ``--json`` a summary for a DBA is printed.
A file that is not a binlog exits with BinlogFormatError's code; a corrupt or
truncated one is *reported* (``status``) and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from shipper.binlog import BinlogInfo, EventHeader, read_events, scan_file
from shipper.errors import ObjectNotFound


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="parse a binlog file: version, checksums, GTIDs, transactions, status",
        description="Parse one binlog file in a single pass and report what it holds.",
    )
    p.add_argument("file", help="path to a binlog file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--events", action="store_true", help="include every event header")
    p.add_argument("--transactions", action="store_true", help="include the transaction index")
    p.set_defaults(func=run)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _iso(ts: int | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _iso_us(us: int) -> str:
    # integer arithmetic: a float of epoch microseconds can round the last digit
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _gtid(info: BinlogInfo) -> dict[str, Any]:
    return {
        "flavor": info.gtid_flavor,
        "previous": info.gtid_previous,
        "added": info.gtid_added,
        "executed_end": info.gtid_executed_end,
        "last": info.last_gtid,
    }


def to_json(
    info: BinlogInfo, events: list[EventHeader] | None = None, transactions: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "file": info.name,
        "size": info.size,
        "sha256": info.sha256,
        "status": info.status,
        "server_version": info.server_version,
        "binlog_version": info.binlog_version,
        "checksum": info.checksum,
        "server_id": info.server_id,
        "in_use": info.in_use,
        "complete": info.complete,
        "truncated_at": info.truncated_at,
        "crc_error_at": info.crc_error_at,
        "checksum_flag_error_at": info.checksum_flag_error_at,
        "encrypted": info.encrypted,
        "event_count": info.event_count,
        "first_timestamp": _iso(info.first_timestamp),
        "last_timestamp": _iso(info.last_timestamp),
        "gtid": _gtid(info),
        "transactions": info.transactions,
        "unknown_event_types": list(info.unknown_event_types),
        "rotate_to": info.rotate_to,
    }
    if transactions:
        out["transaction_index"] = [
            {
                "start": t.start,
                "end": t.end,
                "gtid": t.gtid,
                "commit_time": _iso_us(t.commit_us),
                "commit_epoch_us": t.commit_us,
            }
            for t in info.index
        ]
    if events is not None:
        out["events"] = [
            {
                "pos": e.pos,
                "end_pos": e.end_pos,
                "log_pos": e.log_pos,
                "time": _iso(e.timestamp or None),  # 0: an artificial event, no time
                "timestamp_epoch": e.timestamp,
                "type_code": e.type_code,
                "type": e.type_name,
                "server_id": e.server_id,
                "size": e.size,
                "flags": e.flags,
                "crc_ok": e.crc_ok,
            }
            for e in events
        ]
    return out


def _summary(info: BinlogInfo, events: list[EventHeader] | None, transactions: bool) -> str:
    lines = [
        f"file            {info.name}  ({info.size:,} bytes)",
        f"status          {info.status}" + _status_detail(info),
        f"server          {info.server_version or '?'} (server id {info.server_id}),"
        f" binlog v{info.binlog_version}",
        f"checksum        {info.checksum or 'none (pre-5.6 format)'}",
        f"events          {info.event_count:,}",
        f"time range      {_iso(info.first_timestamp)} .. {_iso(info.last_timestamp)}",
        f"transactions    {info.transactions:,}",
    ]
    if info.gtid_flavor == "mariadb":
        lines += [
            f"GTID list       {info.gtid_previous or '(empty)'}",
            f"last GTID       {info.last_gtid or '(none)'}",
            f"binlog state    {info.gtid_executed_end or '(empty)'} after this file",
        ]
    elif info.gtid_flavor == "mysql":
        lines += [
            f"previous GTIDs  {info.gtid_previous or '(empty)'}",
            f"added GTIDs     {info.gtid_added or '(none: anonymous)'}",
            f"executed after  {info.gtid_executed_end or '(empty)'}",
        ]
    elif info.encrypted:
        lines.append("GTIDs           unknown (encrypted)")
    else:
        lines.append("GTIDs           none (server without GTIDs)")
    if info.rotate_to:
        lines.append(f"next file       {info.rotate_to}")
    if info.encrypted:
        lines.append(f"encrypted       yes: only framed (not read) past offset {info.encrypted_at}")
    if info.unknown_event_types:
        lines.append(f"unknown types   {', '.join(map(str, info.unknown_event_types))} (skipped)")
    lines.append(f"sha256          {info.sha256}")
    if transactions:
        lines.append("")
        lines.append(f"{'start':>12} {'end':>12}  {'commit (UTC)':27} gtid")
        for t in info.index:
            lines.append(f"{t.start:>12} {t.end:>12}  {_iso_us(t.commit_us):27} {t.gtid or '-'}")
    if events is not None:
        lines.append("")
        lines.append(f"{'pos':>12} {'end':>12} {'time (UTC)':20} {'type':22} {'server':>10} crc")
        for e in events:
            crc = "-" if e.crc_ok is None else ("ok" if e.crc_ok else "BAD")
            lines.append(
                f"{e.pos:>12} {e.end_pos:>12} {_iso(e.timestamp or None) or '':20} "
                f"{e.type_name + f' ({e.type_code})':22} {e.server_id:>10} {crc}"
            )
    return "\n".join(lines)


def _status_detail(info: BinlogInfo) -> str:
    if info.status == "crc_mismatch":
        return f": CRC32 of the event at offset {info.crc_error_at} does not verify"
    if info.status == "checksum_flag_mismatch":
        return f": {info.damage}"
    if info.status == "truncated":
        return f": partial event (or zero bytes) at offset {info.truncated_at}"
    if info.status == "in_use":
        return (
            ": no ROTATE/STOP at the end and the in-use flag is set (open, or the server crashed)"
        )
    if info.status == "not_closed":
        return ": no ROTATE/STOP at the end"
    return ""


def run(args: argparse.Namespace) -> int:
    try:
        if args.events:
            info, events = read_events(args.file)
        else:
            info, events = scan_file(args.file), None
    except FileNotFoundError as e:
        raise ObjectNotFound(f"{args.file}: no such file") from e
    if args.json:
        json.dump(to_json(info, events, args.transactions), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(_summary(info, events, args.transactions))
    return 0
