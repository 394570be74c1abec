"""Helpers shared by tests: configs for a sandbox server, running the CLI in-process,
and the restore tests' workload (one transaction at a time, checksums after each)."""

from __future__ import annotations

import contextlib
import random
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shipper import config as config_mod
from shipper.cli import main as cli
from shipper.config import Config, MySQLConfig
from shipper.keys.local import LocalKeyring
from shipper.sandbox import SandboxServer


def write_config(
    state_dir: Path,
    server: SandboxServer,
    *,
    tenant: str = "t1",
    archive: str | None = None,
    extra: str = "",
) -> Path:
    """Write STATE_DIR/config.toml + keyring for ``server``; returns the config path."""
    state_dir.mkdir(parents=True, exist_ok=True)
    keyring = state_dir / "keyring"
    if not keyring.exists():
        LocalKeyring.create(keyring)
    text = config_mod.render_default(
        state_dir,
        tenant=tenant,
        mysql=MySQLConfig(socket=str(server.socket_path)),
        archive_url=archive or f"file://{state_dir / 'archive'}",
        keyring=keyring,
    )
    path = state_dir / "config.toml"
    path.write_text(extra + "\n" + text if extra else text)
    return path


def load(path: Path) -> Config:
    return config_mod.load(path)


def parse(text: str, path: Path | None = None) -> Config:
    return config_mod.parse(tomllib.loads(text), path or Path("config.toml"))


def rotate(server: SandboxServer, n: int, rows: int = 300, table: str = "app.t") -> None:
    """Write ``rows`` rows then FLUSH BINARY LOGS, ``n`` times: ``n`` more closed binlogs."""
    for _ in range(n):
        server.write_rows(table, rows=rows)
        server.flush_binary_logs()


def fill_binlogs(server: SandboxServer, n: int, mb: float = 4.0) -> None:
    """``n`` more closed binlogs of about ``mb`` MB each, written server-side (fast)."""
    server.execute(
        "CREATE DATABASE IF NOT EXISTS app",
        "CREATE TABLE IF NOT EXISTS app.big (id BIGINT AUTO_INCREMENT PRIMARY KEY, v TEXT)",
    )
    rows = int(mb * 1_000_000 / 300)
    for _ in range(n):
        server.execute(
            "INSERT INTO app.big (v) SELECT CONCAT_WS(' ', MD5(RAND()), MD5(RAND()), "
            "MD5(RAND()), 'row', seq, MD5(RAND()), MD5(RAND()), MD5(RAND())) "
            f"FROM app.seq_1_to_{rows}",
            "FLUSH BINARY LOGS",
        )


def closed_binlogs(server: SandboxServer) -> list[str]:
    names = [n for n, _ in server.binary_logs()]
    return names[:-1]


# -- the restore tests' workload


TABLES = ("app.a", "app.b")


@dataclass
class Moment:
    begin: float  # wall clock before the transaction started
    after: float  # wall clock after COMMIT returned (and the checksum was taken)
    gtid: str
    checksums: dict[str, int]


@dataclass
class World:
    server: SandboxServer
    state: Path
    moments: list[Moment] = field(default_factory=list)
    rotations: list[tuple[float, str]] = field(default_factory=list)  # (when, closed file)
    backups: dict[str, str] = field(default_factory=dict)  # tool -> backup id
    backups_done: float = 0.0
    restores: int = 0

    def moment_for_gtid(self, gtid: str) -> int:
        idx = [i for i, m in enumerate(self.moments) if m.gtid == gtid]
        assert idx, f"plan GTID {gtid} is not a recorded moment"
        return idx[-1]


def checksums(server: SandboxServer) -> dict[str, int]:
    rows = server.query(f"CHECKSUM TABLE {', '.join(TABLES)}")
    return {str(r[0]): int(r[1]) for r in rows}


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = cli(args)
    out, err = capsys.readouterr()
    return rc, out, err


def workload(
    w: World,
    steps: int,
    rng: random.Random,
    rotate_every: int,
    quiet_after_first_rotation: bool = False,
) -> None:
    conn = w.server.connect()
    with contextlib.closing(conn), conn.cursor() as cur:
        for i in range(steps):
            begin = time.time()
            cur.execute("BEGIN")
            table = rng.choice(TABLES)
            op = rng.random()
            if op < 0.6:
                cur.executemany(
                    f"INSERT INTO {table} (v, n) VALUES (%s, %s)",
                    [
                        (rng.randbytes(40).hex(), rng.randint(0, 10**6))
                        for _ in range(rng.randint(1, 20))
                    ],
                )
            elif op < 0.85:
                cur.execute(
                    f"UPDATE {table} SET n = n + 1, v = %s WHERE id %% 7 = %s",
                    (rng.randbytes(8).hex(), rng.randint(0, 6)),
                )
            else:
                cur.execute(
                    f"DELETE FROM {table} WHERE id %% 13 = %s LIMIT 3", (rng.randint(0, 12),)
                )
            cur.execute("COMMIT")
            cur.execute("SELECT @@gtid_binlog_pos")
            gtid = str(cur.fetchone()[0])
            cur.execute(f"CHECKSUM TABLE {', '.join(TABLES)}")
            sums = {str(r[0]): int(r[1]) for r in cur.fetchall()}
            w.moments.append(Moment(begin, time.time(), gtid, sums))
            if rotate_every and i % rotate_every == rotate_every - 1:
                cur.execute("SHOW MASTER STATUS")
                closed = str(cur.fetchone()[0])
                cur.execute("FLUSH BINARY LOGS")
                w.rotations.append((time.time(), closed))
                if quiet_after_first_rotation and i == rotate_every - 1:
                    time.sleep(1.2)  # a clean second boundary right after this rotation
            time.sleep(rng.choice((0.0, 0.01, 0.03, 0.08)))


__all__ = [
    "TABLES",
    "Any",
    "Moment",
    "World",
    "checksums",
    "closed_binlogs",
    "fill_binlogs",
    "load",
    "parse",
    "rotate",
    "run_cli",
    "workload",
    "write_config",
]
