"""From the base backup to the stop: which backup, which binlogs, and the GTID state.

The base backup is the newest one whose binlog coordinates are at or before
the stop, and never one whose record says it failed verification or was
deleted; every binlog from it to the stop must be archived, verified and of
one lineage (not stored under a lineage key, same server, and each binlog's
starting GTID state continues the one before), or the plan is refused with a
message that says what to do.
"""

from __future__ import annotations

from collections.abc import Sequence

from shipper.binlog.gtid import (
    MariaDBGtid,
    MariaDBGtidList,
    MariaDBGtidListBuilder,
    MySQLGtidSet,
    MySQLGtidSetBuilder,
    parse_gtid_set,
)
from shipper.binlog.index import TransactionIndex
from shipper.restore.model import ArchivedBinlog, BackupInfo, GtidSet, Position, stem_of
from shipper.restore.plan import PlanRefused, Step, Window


def choose_backup(backups: Sequence[BackupInfo], stop: Position, window: Window) -> BackupInfo:
    fits = [
        b for b in backups if stem_of(b.binlog_file) == stem_of(stop.file) and b.position <= stop
    ]
    ok = [b for b in fits if b.verification not in ("failed", "deleted")]
    if fits and not ok:  # never start a restore from a backup known to be bad or gone
        bad = ", ".join(f"{b.id} ({b.verification})" for b in fits)
        raise PlanRefused(
            "backup_unusable",
            f"every base backup that could start this restore failed verification or "
            f"was deleted: {bad}; take a new one with `binlog-shipper backup take`",
            window,
        )
    if not ok:
        oldest = min(backups, key=lambda b: b.position)
        raise PlanRefused(
            "before_window",
            f"the target stops at {stop}, before the oldest base backup "
            f"({oldest.id}, consistent at {oldest.position}): no backup can "
            "start this restore",
            window,
        )
    return max(ok, key=lambda b: (b.position, b.consistent_at or 0.0))


def binlog_chain(
    rows: list[ArchivedBinlog], backup: BackupInfo, stop: Position, window: Window
) -> list[Step]:
    start = backup.position
    if stop <= start:
        return []
    by_seq = {b.sequence: b for b in rows}
    steps: list[Step] = []
    prev: ArchivedBinlog | None = None
    for seq in range(start.sequence, stop.sequence + 1):
        row = by_seq.get(seq)
        if row is None or stem_of(row.name) != stem_of(stop.file):
            name = f"{stem_of(stop.file)}.{seq:06d}"
            raise PlanRefused(
                "gap",
                f"binlog {name} is missing from the archive, between the "
                f"backup {backup.id} ({start}) and the target ({stop}); restore to "
                f"a point before it, or from a backup taken after it",
                window,
            )
        require_verified(row)
        if prev is not None:
            check_lineage(prev, row)
        steps.append(
            Step(
                name=row.name,
                object_key=row.object_key,
                start=start.offset if seq == start.sequence else 4,
                stop=stop.offset if seq == stop.sequence else None,
                size=row.size,
                sha256=row.sha256,
                server_id=row.server_id,
            )
        )
        prev = row
    return steps


def require_verified(row: ArchivedBinlog) -> None:
    if row.state == "committed":
        return
    if row.state == "gap":
        why = "the server purged it before it was shipped (a gap)"
        hint = "restore to a point before it, or from a backup taken after it"
        raise PlanRefused("gap", f"binlog {row.name} is missing from the archive: {why}; {hint}")
    if row.state == "flagged":
        raise PlanRefused(
            "unverified",
            f"binlog {row.name} failed its event checksums and was "
            "quarantined, not verified: restore to a point before it, or from a "
            "backup taken after it",
        )
    raise PlanRefused(
        "unverified",
        f"binlog {row.name} is not verified in the archive yet "
        f"(state {row.state}): wait for the shipper or run "
        "`binlog-shipper run --once`, then plan again",
    )


def check_lineage(prev: ArchivedBinlog, row: ArchivedBinlog) -> None:
    why = None
    if row.lineage_suffixed:
        why = (
            f"it is stored under a lineage key ({row.object_key}): another file of that name "
            "was archived first (RESET MASTER or a rebuilt server)"
        )
    elif prev.server_uuid and row.server_uuid and prev.server_uuid != row.server_uuid:
        why = f"the server UUID changes from {prev.server_uuid} to {row.server_uuid}"
    elif (
        prev.server_id is not None and row.server_id is not None and prev.server_id != row.server_id
    ):
        why = f"the server id changes from {prev.server_id} to {row.server_id}"
    elif prev.gtid_end and row.gtid_previous is not None and row.gtid_previous != prev.gtid_end:
        # (the same text is the same set: it continues. That is every binlog of one server,
        # so a 10,000-binlog chain parses only the sets that differ.)
        a, b = parse_gtid_set(prev.gtid_end), parse_gtid_set(row.gtid_previous)
        if type(a) is not type(b) or not covers(b, a):
            why = (
                f"its starting GTID state ({row.gtid_previous or 'empty'}) does not continue "
                f"{prev.name}'s end state ({prev.gtid_end}): RESET MASTER or a new server"
            )
    if why:
        raise PlanRefused(
            "lineage",
            f"lineage change inside the restore range at {row.name}: "
            f"{why}. Restore to a point before it, or from a backup taken after it",
        )


# ------------------------------------------------------------------ GTID arithmetic


def covers(big: GtidSet, small: GtidSet) -> bool:
    if isinstance(big, MariaDBGtidList) and isinstance(small, MariaDBGtidList):
        return small.issubset(big)
    if isinstance(big, MySQLGtidSet) and isinstance(small, MySQLGtidSet):
        return small.issubset(big)
    return False


def gtid_after(
    row: ArchivedBinlog, idx: TransactionIndex, offset: int, backup: BackupInfo
) -> GtidSet | None:
    """The GTID state after applying ``row`` up to ``offset``: its start state + its GTIDs."""
    base_text = row.gtid_previous
    if base_text is None:
        base_text = backup.gtid_set if backup.binlog_file == row.name else ""
    if idx.flavor == "mariadb" or (
        base_text and isinstance(parse_gtid_set(base_text), MariaDBGtidList)
    ):
        mb = MariaDBGtidListBuilder(MariaDBGtidList.parse(base_text) if base_text else None)
        for t in idx:
            if t.end > offset:
                break
            if t.gtid:
                mb.add(MariaDBGtid.parse(t.gtid))
        return mb.freeze()
    if idx.flavor == "mysql" or base_text:
        base = MySQLGtidSet.parse(base_text) if base_text else MySQLGtidSet()
        sb = MySQLGtidSetBuilder(base)
        for t in idx:
            if t.end > offset:
                break
            if t.gtid:
                uuid, _, rest = t.gtid.partition(":")
                tag, _, gno = rest.rpartition(":")
                sb.add(uuid, tag, int(gno))
        return sb.freeze()
    return None
