"""A throwaway MariaDB server with binary logging on, for the demo and tests.

It runs in its own temporary datadir on a random port and socket, so it never
touches a server already running on the machine (port 3306 is left alone).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql

from shipper import mariadbd
from shipper.errors import DatabaseError
from shipper.restore.tools import find_tool


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _find(*names: str) -> str:
    return find_tool(*names, error=DatabaseError)


@dataclass
class SandboxServer:
    """A MariaDB server in ``base_dir``. Use :meth:`start` / :meth:`stop` or ``with``."""

    base_dir: Path
    server_id: int = 1
    max_binlog_size: int = 1 << 20
    binlog_basename: str = "mysql-bin"
    extra_args: list[str] = field(default_factory=list)
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def datadir(self) -> Path:
        return self.base_dir / "data"

    @property
    def binlog_dir(self) -> Path:
        return self.base_dir / "binlog"

    @property
    def socket_path(self) -> Path:
        return self.base_dir / "mysqld.sock"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "mysqld.err"

    @property
    def tmpdir(self) -> Path:
        return self.base_dir / "tmp"

    def install(self) -> None:
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.binlog_dir.mkdir(parents=True, exist_ok=True)
        if (self.datadir / "mysql").exists():
            return
        cmd = [
            _find("mariadb-install-db", "mysql_install_db"),
            "--no-defaults",
            f"--datadir={self.datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            f"--tmpdir={self.tmpdir}",  # a private tmpdir: concurrent bootstraps collide in /tmp
        ]
        if os.geteuid() == 0:
            cmd.append("--user=root")
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise DatabaseError(
                f"mariadb-install-db failed in {self.datadir}: {res.stderr[-2000:]}"
            )

    def start(self, timeout: float = 60.0) -> SandboxServer:
        self.install()
        if not self.port:
            self.port = _free_port()
        cmd = [
            _find("mariadbd", "mysqld"),
            "--no-defaults",
            f"--datadir={self.datadir}",
            f"--socket={self.socket_path}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={self.base_dir / 'mysqld.pid'}",
            f"--tmpdir={self.tmpdir}",
            f"--log-error={self.log_path}",
            f"--log-bin={self.binlog_dir / self.binlog_basename}",
            "--binlog-format=ROW",
            f"--server-id={self.server_id}",
            f"--max-binlog-size={self.max_binlog_size}",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=48M",
            "--innodb-flush-log-at-trx-commit=2",
            "--sync-binlog=0",
            "--skip-name-resolve",
            "--log-slave-updates",
            "--max-connections=200",
            *self.extra_args,
        ]
        self.proc = mariadbd.spawn(cmd)
        mariadbd.wait_ready(
            self.proc,
            self._answers,
            timeout=timeout,
            log_path=self.log_path,
            what=str(self.datadir),
            error=DatabaseError,
        )
        return self

    def _answers(self) -> bool:
        try:
            self.connect().close()
            return True
        except pymysql.err.OperationalError:
            return False

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc is not None:
            mariadbd.terminate(self.proc, timeout)  # clean: the binlog gets its STOP event
            self.proc = None

    def connect(self, database: str | None = None, **kw: Any) -> pymysql.connections.Connection:
        return pymysql.connect(
            unix_socket=str(self.socket_path),
            user="root",
            password="",
            database=database,
            autocommit=True,
            **kw,
        )

    def create_user(self, user: str, password: str, *privileges: str) -> None:
        """``CREATE USER`` with ``password`` passed as a query parameter, so any character
        (``#``, quotes, backslashes, spaces) arrives as written, never re-quoted by hand."""
        grants = ", ".join(privileges) or "USAGE"
        for what in ("'localhost'", "'127.0.0.1'"):
            with contextlib.closing(self.connect()) as conn, conn.cursor() as cur:
                cur.execute(f"CREATE OR REPLACE USER %s@{what} IDENTIFIED BY %s", (user, password))
                cur.execute(f"GRANT {grants} ON *.* TO %s@{what}", (user,))

    def dsn(self) -> dict[str, Any]:
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": "root",
            "password": "",
            "socket": str(self.socket_path),
        }

    # -- helpers for tests and the demo --
    def execute(self, *statements: str) -> None:
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)

    def query(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def flush_binary_logs(self) -> None:
        self.execute("FLUSH BINARY LOGS")

    def write_rows(self, table: str = "demo.t", rows: int = 1000, payload: int = 200) -> None:
        """Insert ``rows`` rows of ``payload`` bytes each, in transactions of 100 rows."""
        db = table.split(".")[0]
        self.execute(
            f"CREATE DATABASE IF NOT EXISTS {db}",
            f"CREATE TABLE IF NOT EXISTS {table} (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
            "v VARCHAR(4000), ts TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))",
        )
        with contextlib.closing(self.connect()) as conn, conn.cursor() as cur:
            done = 0
            while done < rows:
                n = min(100, rows - done)
                cur.execute("BEGIN")
                cur.executemany(
                    f"INSERT INTO {table} (v) VALUES (%s)",
                    [(os.urandom(payload // 2).hex(),) for _ in range(n)],
                )
                cur.execute("COMMIT")
                done += n

    def purge_binary_logs_to(self, name: str, timeout: float = 15.0) -> None:
        """PURGE BINARY LOGS TO ``name``, waiting until the server really did it.

        MariaDB silently keeps binlogs that crash recovery may still need until
        its binlog checkpoint moves past them (about a second with
        innodb_flush_log_at_trx_commit=2), so one PURGE is not always enough.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.execute(f"PURGE BINARY LOGS TO '{name}'")
            if self.binary_logs()[0][0] == name:
                return
            if time.monotonic() > deadline:
                raise DatabaseError(f"PURGE BINARY LOGS TO '{name}' did not take effect")
            time.sleep(0.2)

    def binary_logs(self) -> list[tuple[str, int]]:
        return [(str(r[0]), int(r[1])) for r in self.query("SHOW BINARY LOGS")]


@contextlib.contextmanager
def sandbox(base_dir: Path | None = None, **kw: Any) -> Iterator[SandboxServer]:
    tmp = None
    if base_dir is None:
        tmp = tempfile.mkdtemp(prefix="binlog-shipper-mariadb-")
        base_dir = Path(tmp)
    server = SandboxServer(base_dir=base_dir, **kw)
    try:
        yield server.start()
    finally:
        server.stop()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
