"""Discovery: ask the server which binlogs exist and which are closed.

A binlog is *closed* when SHOW BINARY LOGS lists it strictly before the file
SHOW MASTER STATUS names as active (SHOW BINARY LOG STATUS on MySQL 8.4+,
where SHOW MASTER STATUS was removed).
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import Any

import pymysql

from shipper.config import MySQLConfig
from shipper.errors import DatabaseError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerState:
    binlogs: tuple[tuple[str, int], ...]  # (name, size) as SHOW BINARY LOGS lists them
    active: str
    log_bin_basename: str
    server_id: int
    server_uuid: str
    version: str
    #: seconds after which the server purges a binlog (0: never)
    expire_seconds: int

    @property
    def closed(self) -> list[tuple[str, int]]:
        names = [n for n, _ in self.binlogs]
        if self.active not in names:
            return []
        return list(self.binlogs[: names.index(self.active)])

    @property
    def binlog_dir(self) -> str:
        return os.path.dirname(self.log_bin_basename)


def connect(cfg: MySQLConfig) -> pymysql.connections.Connection:
    kw: dict[str, Any] = {
        "user": cfg.user,
        "password": cfg.password_bytes(),  # bytes: see MySQLConfig.password_bytes
        "connect_timeout": cfg.connect_timeout,
        "autocommit": True,
    }
    if cfg.socket:
        kw["unix_socket"] = cfg.socket
        where = f"socket {cfg.socket}"
    else:
        kw["host"], kw["port"] = cfg.host, cfg.port
        where = f"{cfg.host}:{cfg.port}"
    try:
        return pymysql.connect(**kw)
    except pymysql.err.MySQLError as e:
        raise DatabaseError(f"cannot connect to MySQL/MariaDB at {where} as {cfg.user}: {e}") from e


def _scalar(cur: Any, sql: str) -> Any:
    try:
        cur.execute(sql)
    except pymysql.err.MySQLError:
        return None
    row = cur.fetchone()
    return row[0] if row else None


def read_state(cfg: MySQLConfig) -> ServerState:
    with contextlib.closing(connect(cfg)) as conn, conn.cursor() as cur:
        try:
            cur.execute("SHOW BINARY LOGS")
            binlogs = tuple((str(r[0]), int(r[1])) for r in cur.fetchall())
        except pymysql.err.MySQLError as e:
            raise DatabaseError(
                f"SHOW BINARY LOGS failed (is log_bin on? does the user have "
                f"REPLICATION CLIENT / BINLOG MONITOR?): {e}"
            ) from e
        status = None
        for sql in ("SHOW MASTER STATUS", "SHOW BINARY LOG STATUS"):
            try:
                cur.execute(sql)
                status = cur.fetchone()
                break
            except pymysql.err.MySQLError as e:
                log.debug("%s failed: %s", sql, e)
        if not status:
            raise DatabaseError(
                "neither SHOW MASTER STATUS nor SHOW BINARY LOG STATUS returned "
                "a row: binary logging is off on this server"
            )
        basename = _scalar(cur, "SELECT @@log_bin_basename") or ""
        server_id = int(_scalar(cur, "SELECT @@server_id") or 0)
        server_uuid = _scalar(cur, "SELECT @@server_uuid") or ""
        version = _scalar(cur, "SELECT VERSION()") or ""
        expire = _scalar(cur, "SELECT @@binlog_expire_logs_seconds")
        if expire is None:
            days = _scalar(cur, "SELECT @@expire_logs_days")
            expire = int(float(days or 0) * 86400)
    return ServerState(
        binlogs=binlogs,
        active=str(status[0]),
        log_bin_basename=str(basename),
        server_id=server_id,
        server_uuid=str(server_uuid),
        version=str(version),
        expire_seconds=int(expire or 0),
    )
