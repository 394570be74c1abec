"""The restore planner: (backups, archived binlogs, a target) -> exact replay plan.

Pure: no storage, no database. :func:`plan_restore` is the whole of it; the
steps live beside it:

* :mod:`shipper.restore.stop` -- the target resolved to an exact stop, by kind
  (time, GTID, position, latest), and how precisely the stop meets it;
* :mod:`shipper.restore.chain` -- the base backup for that stop, the chain of
  binlogs from it to the stop, and the GTID state the replay ends with;
* :mod:`shipper.restore.plan` -- what comes out: :class:`Plan`, or
  :class:`PlanRefused` with a reason code and the recoverable window.

Transaction indexes are fetched through the ``load_index`` callable only for
the binlogs the plan needs to look inside (the one holding the stop, and the
neighbour when a second straddles it).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from shipper.binlog.gtid import MariaDBGtidList, parse_gtid_set
from shipper.binlog.index import Transaction
from shipper.errors import RestoreError
from shipper.restore.chain import binlog_chain, choose_backup, covers, gtid_after
from shipper.restore.model import ArchivedBinlog, BackupInfo, Target
from shipper.restore.plan import (
    Plan,
    PlanRefused,
    Precision,
    Step,
    Window,
    recoverable_window,
)
from shipper.restore.stop import IndexLoader, StopResolver

__all__ = [
    "AMBIGUOUS_POLICIES",
    "IndexLoader",
    "Plan",
    "PlanRefused",
    "Precision",
    "Step",
    "Window",
    "plan_restore",
]

AMBIGUOUS_POLICIES = ("exclude", "include")


def plan_restore(
    target: Target,
    backups: Sequence[BackupInfo],
    binlogs: Iterable[ArchivedBinlog],
    load_index: IndexLoader,
    *,
    ambiguous: str = "exclude",
    backup_id: str | None = None,
) -> Plan:
    """Plan a restore to ``target``; raises :class:`PlanRefused` with an actionable message."""
    if ambiguous not in AMBIGUOUS_POLICIES:
        raise RestoreError(
            f"ambiguous must be one of {', '.join(AMBIGUOUS_POLICIES)}, got {ambiguous!r}"
        )
    by_name = {b.name: b for b in binlogs}  # the last of a name wins
    rows = sorted(by_name.values(), key=lambda b: b.sequence)
    window = recoverable_window(backups, rows)
    if not backups:
        raise PlanRefused(
            "no_backup",
            "no base backup is registered: take one with "
            "`binlog-shipper backup take --tool mariabackup` (or register an "
            "existing one with `binlog-shipper backup register`)",
            window,
        )
    if backup_id is not None:
        chosen = [b for b in backups if b.id == backup_id]
        if not chosen:
            known = ", ".join(b.id for b in backups) or "none"
            raise PlanRefused("no_backup", f"backup {backup_id} is not registered (known: {known})")
        backups = chosen
    r = StopResolver(rows, load_index, window, ambiguous)
    stop, stop_index, precision = r.resolve(target)
    backup = choose_backup(backups, max(stop, r.alias or stop), window)
    if backup.position > stop:  # same state: the backup holds nothing of the stop's file
        stop = backup.position
    steps = binlog_chain(rows, backup, stop, window)
    notes = list(r.notes)
    last: Transaction | None = None
    if steps and stop_index is not None:
        applied = [t for t in stop_index if t.end <= stop.offset]
        if stop.sequence == backup.position.sequence:
            applied = [t for t in applied if t.start >= backup.binlog_pos]
        last = applied[-1] if applied else None
        stop_row = by_name[stop.file]
        gtid = gtid_after(stop_row, stop_index, stop.offset, backup)
    else:
        gtid = parse_gtid_set(backup.gtid_set) if backup.gtid_set else None
        notes.append(
            f"the target is the backup's own position {backup.position}: no binlog is replayed"
        )
    want = target.gtid
    if (
        want is not None
        and gtid is not None
        and type(gtid) is type(want)
        and not covers(gtid, want)
    ):
        raise PlanRefused(
            "gtid_not_prefix",
            f"GTID target {target.text} is not reached by stopping at {stop}: "
            f"the restored server would have {gtid}",
        )
    gtid_text = str(gtid) if gtid is not None else ""
    gtid_pos = str(gtid.position()) if isinstance(gtid, MariaDBGtidList) else gtid_text
    for s in steps:  # by name, not a walk of every row per step: plans replay 10,000s
        row = by_name[s.name]
        if row.file_status and row.file_status != "complete":
            notes.append(
                f"binlog {s.name} is {row.file_status} (server crash?): it is "
                "replayed up to its last whole transaction"
            )
    return Plan(
        target=target,
        backup=backup,
        steps=tuple(steps),
        start=backup.position,
        stop=stop,
        gtid_set=gtid_text,
        gtid_position=gtid_pos,
        last_transaction=last,
        precision=precision,
        window=window,
        notes=tuple(notes),
    )
