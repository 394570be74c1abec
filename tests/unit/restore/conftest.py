"""A synthetic MariaDB archive for planner tests: 5 binlogs, 4 transactions each."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from shipper.binlog.index import TransactionIndex
from shipper.restore.model import ArchivedBinlog, BackupInfo

T0 = 1_800_000_000  # 2027-01-15T08:00:00Z
HEADER = 256
TX = 100


@dataclass
class Archive:
    binlogs: list[ArchivedBinlog]
    indexes: dict[str, TransactionIndex]
    backups: list[BackupInfo]
    loaded: list[str] = field(default_factory=list)

    def load(self, row: ArchivedBinlog) -> TransactionIndex:
        self.loaded.append(row.name)
        return self.indexes[row.name]

    def with_row(self, name: str, **changes: object) -> Archive:
        rows = [replace(b, **changes) if b.name == name else b for b in self.binlogs]  # type: ignore[arg-type]
        return Archive(rows, self.indexes, self.backups)

    def without(self, name: str) -> Archive:
        return Archive([b for b in self.binlogs if b.name != name], self.indexes, self.backups)


def stamps(k: int) -> list[int]:
    """Commit seconds of file k's 4 transactions; file 3 has two sharing a second."""
    base = T0 + 10 * k
    if k == 3:
        return [base + 1, base + 3, base + 3, base + 5]
    return [base + 1, base + 3, base + 5, base + 7]


def build() -> Archive:
    rows, idxs = [], {}
    seq = 0
    for k in range(1, 6):
        name = f"mysql-bin.{k:06d}"
        idx = TransactionIndex("mariadb")
        prev = f"0-1-{seq}" if seq else ""
        for j, ts in enumerate(stamps(k)):
            seq += 1
            start = HEADER + j * TX
            idx.append(start, start + TX, ts * 1_000_000, "0-1", seq)
        idxs[name] = idx
        rows.append(
            ArchivedBinlog(
                name=name,
                state="committed",
                server_id=1,
                first_ts=T0 + 10 * k,
                last_ts=stamps(k)[-1],
                gtid_previous=prev,
                gtid_end=f"0-1-{seq}",
                object_key=f"t/mysql/1/2027/01/{name}.zst.enc",
                size=HEADER + 4 * TX + 40,
                sha256="00" * 32,
                file_status="complete",
            )
        )
    backups = [
        BackupInfo(
            id="b1",
            tool="mariabackup",
            binlog_file="mysql-bin.000002",
            binlog_pos=HEADER + TX,
            gtid_set="0-1-5",
            consistent_at=T0 + 22,
        ),
        BackupInfo(
            id="b2",
            tool="mysqldump",
            binlog_file="mysql-bin.000004",
            binlog_pos=HEADER,
            gtid_set="0-1-12",
            consistent_at=T0 + 40,
        ),
    ]
    return Archive(rows, idxs, backups)


@pytest.fixture()
def archive() -> Archive:
    return build()
