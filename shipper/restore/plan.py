"""What a restore plan says, and why one is refused.

:class:`Plan` is the planner's answer: the base backup, the binlogs to replay
(one :class:`Step` each), the exact start and stop, the GTID state the restored
server ends with, and how exactly it meets the target (:class:`Precision`).
:class:`PlanRefused` is the other answer, with a stable ``reason`` code and,
when the target lies outside it, the recoverable :class:`Window`. Plain values:
:func:`shipper.restore.planner.plan_restore` makes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shipper.binlog.index import Transaction
from shipper.errors import RestoreError
from shipper.restore.model import (
    ArchivedBinlog,
    BackupInfo,
    Position,
    Target,
    iso_us,
)

SECOND_US = 1_000_000  # times here are epoch microseconds


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


def recoverable_window(backups: Sequence[BackupInfo], rows: list[ArchivedBinlog]) -> Window:
    """From the oldest backup's consistent point to the newest verified binlog's last event."""
    earliest: int | None = None
    elabel = "no base backup"
    if backups:
        oldest = min(backups, key=lambda b: b.position)
        if oldest.consistent_at is not None:
            earliest = int(oldest.consistent_at * SECOND_US)
        elabel = f"backup {oldest.id} at {oldest.position}"
    committed = [b for b in rows if b.state == "committed"]
    latest: int | None = None
    llabel = "nothing archived"
    if committed:
        newest = committed[-1]
        if newest.last_ts is not None:
            latest = newest.last_ts * SECOND_US
        llabel = f"end of {newest.name}"
    return Window(earliest, elabel, latest, llabel)
