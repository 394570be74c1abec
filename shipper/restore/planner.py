"""The restore planner: (backups, archived binlogs, a target) -> exact replay plan.

Pure: no storage, no database. Transaction indexes are fetched through the
``load_index`` callable only for the binlogs the plan needs to look inside
(the one holding the stop, and the neighbour when a second straddles it).

How the stop is found, by target kind:

* **time** -- the last transaction *committed at or before* the target. MySQL
  8 indexes carry microsecond commit times and the stop is exact. MariaDB
  headers carry whole seconds, so a transaction stamped ``10:41:07`` may have
  committed at any moment of that second; for a target inside it the plan
  follows ``ambiguous``: ``"exclude"`` (default) keeps only what certainly
  committed by the target, ``"include"`` also keeps what may have. Either way
  the plan says how many transactions shared the second and which side it took.
  ``--stop-datetime`` is never used: it reads local time with one-second steps.
* **gtid** -- the end of the last transaction in the target set, in the first
  binlog whose GTID state covers it. Exact.
* **position** -- ``file:pos`` must be a transaction boundary. Exact.
* **latest** -- the end of the newest verified binlog.

The base backup is the newest one whose binlog coordinates are at or before
the stop; every binlog from it to the stop must be archived, verified and of
one lineage, or the plan is refused with a message that says what to do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shipper.binlog.gtid import (
    MariaDBGtid,
    MariaDBGtidList,
    MariaDBGtidListBuilder,
    MySQLGtidSet,
    MySQLGtidSetBuilder,
    parse_gtid_set,
)
from shipper.binlog.index import Transaction, TransactionIndex
from shipper.errors import RestoreError
from shipper.restore.model import (
    ArchivedBinlog,
    BackupInfo,
    GtidSet,
    Position,
    Target,
    iso_us,
    stem_of,
)

IndexLoader = Callable[[ArchivedBinlog], TransactionIndex]
AMBIGUOUS_POLICIES = ("exclude", "include")
_SECOND = 1_000_000


class PlanRefused(RestoreError):
    """The plan cannot be made as asked; ``reason`` is a stable machine-readable code."""

    def __init__(self, reason: str, message: str, window: Window | None = None) -> None:
        if window is not None:
            message = f"{message}\n  recoverable window: {window}"
        super().__init__(message)
        self.reason = reason
        self.window = window


@dataclass(frozen=True)
class Window:
    """The span a restore can reach: oldest backup .. newest archived event."""

    earliest_us: int | None
    earliest_label: str
    latest_us: int | None
    latest_label: str

    def __str__(self) -> str:
        a = iso_us(self.earliest_us) if self.earliest_us is not None else "?"
        b = iso_us(self.latest_us) if self.latest_us is not None else "?"
        return f"{a} ({self.earliest_label}) .. {b} ({self.latest_label})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "earliest": iso_us(self.earliest_us) if self.earliest_us is not None else None,
            "earliest_source": self.earliest_label,
            "latest": iso_us(self.latest_us) if self.latest_us is not None else None,
            "latest_source": self.latest_label,
        }


@dataclass(frozen=True)
class Step:
    """Replay ``name`` from ``start`` to ``stop`` (None: to its end)."""

    name: str
    object_key: str | None
    start: int
    stop: int | None
    size: int | None
    sha256: str | None
    server_id: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "object_key": self.object_key,
            "start": self.start,
            "stop": self.stop,
            "size": self.size,
            "sha256": self.sha256,
            "server_id": self.server_id,
        }


@dataclass(frozen=True)
class Precision:
    """How exactly the plan meets the target."""

    resolution: str  # "transaction" (gtid/position/latest), "microsecond" or "second"
    policy: str | None = None
    same_second: int = 0  # transactions stamped in the target's second (second resolution)
    included: int = 0  # of those, how many the plan applies
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "resolution": self.resolution,
            "policy": self.policy,
            "same_second": self.same_second,
            "included": self.included,
            "note": self.note,
        }


@dataclass(frozen=True)
class Plan:
    target: Target
    backup: BackupInfo
    steps: tuple[Step, ...]
    start: Position
    stop: Position
    gtid_set: str
    gtid_position: str
    last_transaction: Transaction | None
    precision: Precision
    window: Window
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def restores_to_us(self) -> int | None:
        return self.last_transaction.commit_us if self.last_transaction else None

    def to_dict(self) -> dict[str, Any]:
        last = self.last_transaction
        return {
            "target": self.target.to_dict(),
            "backup": self.backup.to_dict(),
            "binlogs": [s.to_dict() for s in self.steps],
            "start": {"file": self.start.file, "position": self.start.offset},
            "stop": {"file": self.stop.file, "position": self.stop.offset},
            "gtid_set": self.gtid_set,
            "gtid_position": self.gtid_position,
            "last_transaction": None
            if last is None
            else {
                "gtid": last.gtid,
                "start": last.start,
                "end": last.end,
                "commit_time": iso_us(last.commit_us),
            },
            "restores_to": iso_us(last.commit_us) if last else None,
            "precision": self.precision.to_dict(),
            "window": self.window.to_dict(),
            "notes": list(self.notes),
        }


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
    window = _window(backups, rows)
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
    r = _Resolver(rows, load_index, window, ambiguous)
    stop, stop_index, precision = r.resolve(target)
    backup = _choose_backup(backups, max(stop, r.alias or stop), window)
    if backup.position > stop:  # same state: the backup holds nothing of the stop's file
        stop = backup.position
    steps = _chain(rows, backup, stop, window)
    notes = list(r.notes)
    last: Transaction | None = None
    if steps and stop_index is not None:
        applied = [t for t in stop_index if t.end <= stop.offset]
        if stop.sequence == backup.position.sequence:
            applied = [t for t in applied if t.start >= backup.binlog_pos]
        last = applied[-1] if applied else None
        stop_row = by_name[stop.file]
        gtid = _gtid_after(stop_row, stop_index, stop.offset, backup)
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
        and not _covers(gtid, want)
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


# ------------------------------------------------------------------ resolving the stop


class _Resolver:
    def __init__(
        self, rows: list[ArchivedBinlog], load_index: IndexLoader, window: Window, ambiguous: str
    ) -> None:
        self.rows = rows
        self.load_index = load_index
        self.window = window
        self.ambiguous = ambiguous
        self.notes: list[str] = []
        self.committed = [b for b in rows if b.state == "committed"]
        #: the stop before :meth:`_settle` moved it back: the same database state
        self.alias: Position | None = None
        self._indexes: dict[str, TransactionIndex] = {}

    def index(self, row: ArchivedBinlog) -> TransactionIndex:
        _require_verified(row)
        if row.name not in self._indexes:  # each index is fetched and decrypted once
            self._indexes[row.name] = self.load_index(row)
        return self._indexes[row.name]

    def resolve(self, target: Target) -> tuple[Position, TransactionIndex, Precision]:
        if not self.committed:
            raise PlanRefused(
                "after_window",
                "no verified binlog is archived yet: run the "
                "shipper (`binlog-shipper run --once`) first",
                self.window,
            )
        if target.kind == "latest":
            stop, idx, prec = self._latest()
        elif target.kind == "time":
            assert target.time_us is not None
            stop, idx, prec = self._time(target.time_us)
        elif target.kind == "gtid":
            assert target.gtid is not None
            stop, idx, prec = self._gtid(target.gtid, target.text)
        else:
            assert target.position is not None
            stop, idx, prec = self._position(target.position)
        self.alias = stop
        stop, idx = self._settle(stop, idx)
        return stop, idx, prec

    def _settle(self, stop: Position, idx: TransactionIndex) -> tuple[Position, TransactionIndex]:
        """A stop before a binlog's first transaction becomes the end of the binlog before it.

        The replication applier checks ``UNTIL`` only after a whole event group, so a stop
        among a file's header events could run one transaction too far; the end of the
        previous file's last transaction is the same state and an exact stop.
        """
        while len(idx) == 0 or stop.offset <= idx[0].start:
            prev = next((b for b in self.rows if b.sequence == stop.sequence - 1), None)
            if (
                prev is None
                or prev.state != "committed"
                or stem_of(prev.name) != stem_of(stop.file)
            ):
                break
            pidx = self.load_index(prev)
            stop = Position.of(prev.name, pidx[-1].end if len(pidx) else (prev.size or 4))
            idx = pidx
        return stop, idx

    def _latest(self) -> tuple[Position, TransactionIndex, Precision]:
        row = self.committed[-1]
        newer = [b.name for b in self.rows if b.sequence > row.sequence]
        if newer:
            self.notes.append(
                f"'latest' is the end of {row.name}, the newest verified binlog; "
                f"newer ones are not restorable yet: {', '.join(newer)}"
            )
        idx = self.index(row)
        offset = idx[-1].end if len(idx) else (row.size or 4)
        return (
            Position.of(row.name, offset),
            idx,
            Precision("transaction", note="end of the archive"),
        )

    def _time(self, t_us: int) -> tuple[Position, TransactionIndex, Precision]:
        t_sec = t_us // _SECOND
        newest = self.committed[-1]
        if newest.last_ts is not None and t_sec > newest.last_ts:
            raise PlanRefused(
                "after_window",
                f"target {iso_us(t_us)} is after the newest archived event "
                f"({iso_us(newest.last_ts * _SECOND)}, end of {newest.name}); "
                "binlogs after it are not archived yet: ship them first, or use "
                "'latest'",
                self.window,
            )
        cands = [b for b in self.rows if b.first_ts is not None and b.first_ts <= t_sec]
        if not cands:
            raise PlanRefused(
                "before_window",
                f"target {iso_us(t_us)} is before the oldest archived binlog",
                self.window,
            )
        row = cands[-1]
        idx = self.index(row)
        micro = any(t.commit_us % _SECOND for t in idx)
        slack = 0 if micro or self.ambiguous == "include" else _SECOND - 1
        eff_sec = (t_us - slack) // _SECOND
        if eff_sec != t_sec:
            # 'exclude' on whole seconds: the target's own second must not be replayed, and
            # a binlog that starts in it is not needed at all.
            earlier = [b for b in cands if b.first_ts is not None and b.first_ts <= eff_sec]
            if earlier and earlier[-1].name != row.name:
                row = earlier[-1]
                idx = self.index(row)
        self._check_hole_after(row, t_sec)
        tx = idx.last_committed_by(t_us - slack)
        offset = tx.end if tx is not None else (idx[0].start if len(idx) else (row.size or 4))
        stop = Position.of(row.name, offset)
        if micro:
            return (
                stop,
                idx,
                Precision("microsecond", note="commit times carry microseconds: the stop is exact"),
            )
        stamped = self._stamped_in(t_sec, stem_of(row.name))
        same = [t for _, t in stamped]
        # what the plan applies is everything up to the stop, in whichever binlog it lies
        included = sum(1 for b, t in stamped if Position.of(b.name, t.end) <= stop)
        if not same:
            note = (
                "binlog headers carry whole seconds; no transaction is stamped in the "
                "target's second, so the stop is exact"
            )
        else:
            first, lastg = same[0].gtid or "?", same[-1].gtid or "?"
            if self.ambiguous == "exclude":
                note = (
                    f"binlog headers carry whole seconds: {len(same)} transaction(s) "
                    f"({first} .. {lastg}) are stamped {iso_us(t_sec * _SECOND)[:19]}Z, "
                    "the target's second; policy 'exclude' stops before all of them (only "
                    "what certainly committed by the target is restored). Use --ambiguous "
                    "include to keep them, or a GTID target to stop between them"
                )
            else:
                note = (
                    f"binlog headers carry whole seconds: {len(same)} transaction(s) "
                    f"({first} .. {lastg}) are stamped {iso_us(t_sec * _SECOND)[:19]}Z, "
                    "the target's second; policy 'include' keeps all of them (some may "
                    "have committed after the target). Use a GTID target to stop "
                    "between them"
                )
        return stop, idx, Precision("second", self.ambiguous, len(same), included, note)

    def _stamped_in(self, t_sec: int, stem: str) -> list[tuple[ArchivedBinlog, Transaction]]:
        """Every transaction stamped ``t_sec``, across every binlog that may hold one.

        Rotations can fall inside one second (FLUSH BINARY LOGS, max_binlog_size), so the
        second can span any number of files: each whose [first, last] event range contains
        it. A file not verified yet cannot be opened; the plan says it was not counted.
        """
        out: list[tuple[ArchivedBinlog, Transaction]] = []
        for b in self.rows:
            if stem_of(b.name) != stem or b.first_ts is None or b.first_ts > t_sec:
                continue
            if b.last_ts is not None and b.last_ts < t_sec:
                continue
            if b.state != "committed":
                self.notes.append(
                    f"binlog {b.name} (state {b.state}) may also hold transactions stamped in "
                    "the target's second: it is not verified yet, so they are not counted"
                )
                continue
            out += [(b, t) for t in self.index(b) if t.commit_us // _SECOND == t_sec]
        return out

    def _check_hole_after(self, row: ArchivedBinlog, t_sec: int) -> None:
        """A target past ``row``'s last event may fall in missing binlogs after it."""
        if row.last_ts is not None and t_sec < row.last_ts:
            return
        nxt = next((b for b in self.rows if b.sequence == row.sequence + 1), None)
        later = [b for b in self.rows if b.sequence > row.sequence]
        if later and (nxt is None or nxt.first_ts is None):
            name = nxt.name if nxt is not None else f"{stem_of(row.name)}.{row.sequence + 1:06d}"
            raise PlanRefused(
                "gap",
                f"binlog {name} is missing from the archive (or was never dated), and the "
                f"target may fall inside it: it follows {row.name}, whose last event is "
                f"{iso_us((row.last_ts or 0) * _SECOND)}; restore to a point before that, or "
                "from a backup taken after the gap",
                self.window,
            )

    def _gtid(self, want: GtidSet, text: str) -> tuple[Position, TransactionIndex, Precision]:
        for row in self.rows:
            if not row.gtid_end:
                continue
            end = parse_gtid_set(row.gtid_end)
            if type(end) is not type(want):
                raise PlanRefused(
                    "gtid_flavor",
                    f"GTID target {text} is "
                    f"{want.flavor}-style but the archive holds "
                    f"{end.flavor} GTIDs (e.g. {row.gtid_end})",
                )
            if not _covers(end, want):
                continue
            idx = self.index(row)
            hits = [t for t in idx if t.gtid and _covers(want, parse_gtid_set(t.gtid))]
            offset = hits[-1].end if hits else (idx[0].start if len(idx) else 4)
            return (
                Position.of(row.name, offset),
                idx,
                Precision("transaction", note=f"stops right after the last transaction of {text}"),
            )
        newest = self.committed[-1]
        raise PlanRefused(
            "after_window",
            f"GTID target {text} is not in the archive: the newest "
            f"archived binlog {newest.name} ends at GTID state "
            f"{newest.gtid_end or '?'}; ship newer binlogs first",
            self.window,
        )

    def _position(self, pos: Position) -> tuple[Position, TransactionIndex, Precision]:
        row = next((b for b in self.rows if b.name == pos.file), None)
        if row is None:
            if self.rows and pos.sequence > self.rows[-1].sequence:
                raise PlanRefused(
                    "after_window",
                    f"binlog {pos.file} is newer than the archive "
                    f"(newest: {self.rows[-1].name}); ship it first",
                    self.window,
                )
            raise PlanRefused("gap", f"binlog {pos.file} is not in the archive", self.window)
        idx = self.index(row)
        # Past the end is a typo or another server's file: refuse it rather than clamp it
        # to the last transaction, which would restore less than asked without a word.
        if row.size is not None and pos.offset > row.size:
            last = f"{row.name}:{idx[-1].end}" if len(idx) else f"{row.name}:{row.size}"
            raise PlanRefused(
                "after_window",
                f"{pos} is past the end of {row.name}, which is {row.size} bytes long in "
                f"the archive; its last transaction ends at {last}",
                self.window,
            )
        inside = idx.containing(pos.offset)
        if inside is not None and inside.start != pos.offset:
            raise PlanRefused(
                "inside_transaction",
                f"{pos} is inside transaction {inside.gtid or '(no GTID)'} "
                f"[{inside.start}, {inside.end}); stop at {pos.file}:"
                f"{inside.start} (before it) or {pos.file}:{inside.end} (after it)",
            )
        before = [t for t in idx if t.end <= pos.offset]
        offset = before[-1].end if before else (idx[0].start if len(idx) else pos.offset)
        return (
            Position.of(row.name, offset),
            idx,
            Precision("transaction", note="transaction boundary"),
        )


# ------------------------------------------------------------------ backup and chain


def _choose_backup(backups: Sequence[BackupInfo], stop: Position, window: Window) -> BackupInfo:
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


def _chain(
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
        _require_verified(row)
        if prev is not None:
            _check_lineage(prev, row)
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


def _require_verified(row: ArchivedBinlog) -> None:
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


def _check_lineage(prev: ArchivedBinlog, row: ArchivedBinlog) -> None:
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
        if type(a) is not type(b) or not _covers(b, a):
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


def _window(backups: Sequence[BackupInfo], rows: list[ArchivedBinlog]) -> Window:
    earliest: int | None = None
    elabel = "no base backup"
    if backups:
        oldest = min(backups, key=lambda b: b.position)
        if oldest.consistent_at is not None:
            earliest = int(oldest.consistent_at * _SECOND)
        elabel = f"backup {oldest.id} at {oldest.position}"
    committed = [b for b in rows if b.state == "committed"]
    latest: int | None = None
    llabel = "nothing archived"
    if committed:
        newest = committed[-1]
        if newest.last_ts is not None:
            latest = newest.last_ts * _SECOND
        llabel = f"end of {newest.name}"
    return Window(earliest, elabel, latest, llabel)


# ------------------------------------------------------------------ GTID arithmetic


def _covers(big: GtidSet, small: GtidSet) -> bool:
    if isinstance(big, MariaDBGtidList) and isinstance(small, MariaDBGtidList):
        return small.issubset(big)
    if isinstance(big, MySQLGtidSet) and isinstance(small, MySQLGtidSet):
        return small.issubset(big)
    return False


def _gtid_after(
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
