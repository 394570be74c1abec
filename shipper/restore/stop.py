"""Where a restore stops: a target resolved to an exact binlog position.

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

Transaction indexes are fetched through the ``load_index`` callable only for
the binlogs the plan needs to look inside (the one holding the stop, and the
neighbour when a second straddles it).
"""

from __future__ import annotations

from collections.abc import Callable

from shipper.binlog.gtid import parse_gtid_set
from shipper.binlog.index import Transaction, TransactionIndex
from shipper.restore.chain import covers, require_verified
from shipper.restore.model import ArchivedBinlog, GtidSet, Position, Target, iso_us, stem_of
from shipper.restore.plan import SECOND_US, PlanRefused, Precision, Window

IndexLoader = Callable[[ArchivedBinlog], TransactionIndex]


class StopResolver:
    """Resolves a target over ``rows`` (every archived binlog, oldest first).

    ``notes`` collects what the plan should tell the user about the stop.
    """

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
        require_verified(row)
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
        t_sec = t_us // SECOND_US
        newest = self.committed[-1]
        if newest.last_ts is not None and t_sec > newest.last_ts:
            raise PlanRefused(
                "after_window",
                f"target {iso_us(t_us)} is after the newest archived event "
                f"({iso_us(newest.last_ts * SECOND_US)}, end of {newest.name}); "
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
        micro = any(t.commit_us % SECOND_US for t in idx)
        slack = 0 if micro or self.ambiguous == "include" else SECOND_US - 1
        eff_sec = (t_us - slack) // SECOND_US
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
                    f"({first} .. {lastg}) are stamped {iso_us(t_sec * SECOND_US)[:19]}Z, "
                    "the target's second; policy 'exclude' stops before all of them (only "
                    "what certainly committed by the target is restored). Use --ambiguous "
                    "include to keep them, or a GTID target to stop between them"
                )
            else:
                note = (
                    f"binlog headers carry whole seconds: {len(same)} transaction(s) "
                    f"({first} .. {lastg}) are stamped {iso_us(t_sec * SECOND_US)[:19]}Z, "
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
            out += [(b, t) for t in self.index(b) if t.commit_us // SECOND_US == t_sec]
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
                f"{iso_us((row.last_ts or 0) * SECOND_US)}; restore to a point before that, or "
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
            if not covers(end, want):
                continue
            idx = self.index(row)
            hits = [t for t in idx if t.gtid and covers(want, parse_gtid_set(t.gtid))]
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
