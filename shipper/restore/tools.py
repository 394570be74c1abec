"""Running the MariaDB/MySQL command-line tools (client, dump, backup, binlog).

The restore package talks to servers only through these programs, never a
driver: the same tools a DBA would run by hand, so every step can be
reproduced from the log. Passwords go through a private ``--defaults-extra-file``,
never the command line (where ``ps`` would show them): written 0600 in a fresh
0700 directory (under the restore's work dir when it has one, so a rerun after
SIGKILL can remove what a killed run left) and removed when the tool exits.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shipper.errors import DatabaseError, RestoreError, ShipperError


def find_tool(*names: str, error: type[ShipperError] = RestoreError) -> str:
    """The first of ``names`` on PATH (or in /usr/sbin, where Debian puts mariadbd)."""
    for name in names:
        for d in ("", "/usr/sbin/", "/usr/bin/"):
            path = shutil.which(d + name) if d else shutil.which(name)
            if path:
                return path
    raise error(
        f"{names[0]} not found on PATH: install it (Debian: mariadb-client, "
        "mariadb-server, mariadb-backup; make test and make demo do it)"
    )


#: prefix of the private directories holding a client option file
CNF_DIR_PREFIX = "binlog-shipper-cnf-"
_PASSWORD_RE = re.compile(r"(password\s*=)[^,]*")


def mask_dsn(dsn: str) -> str:
    """``dsn`` with its password replaced by ``***``, for messages and logs."""
    return _PASSWORD_RE.sub(r"\1***", dsn)


_OPTION_ESCAPES = (
    ("\\", "\\\\"),  # first: every later escape adds a backslash
    ('"', '\\"'),
    ("'", "\\'"),
    ("\n", "\\n"),
    ("\r", "\\r"),
    ("\t", "\\t"),
)


def option_value(value: str) -> str:
    """``value`` as a MariaDB option-file value: double-quoted, with ``\\``, quotes and
    control characters escaped. Unquoted, a ``#`` would start a comment and
    surrounding quotes or spaces would be stripped (mysys ``my_default.c``)."""
    for char, escaped in _OPTION_ESCAPES:
        value = value.replace(char, escaped)
    return f'"{value}"'


def remove_option_files(where: Path) -> int:
    """Remove option-file directories a killed run left in ``where``; how many."""
    n = 0
    with contextlib.suppress(FileNotFoundError):
        for d in where.iterdir():
            if d.name.startswith(CNF_DIR_PREFIX) and d.is_dir():
                shutil.rmtree(d, ignore_errors=True)
                n += 1
    return n


@dataclass(frozen=True)
class Conn:
    """How the tools reach a server: a socket, or host + port."""

    socket: str = ""
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password: str = field(default="", repr=False)
    #: where option files holding the password are created ("": the system temp dir)
    cnf_dir: str = field(default="", repr=False, compare=False)

    @classmethod
    def parse(cls, dsn: str) -> Conn:
        """``socket=/run/mysqld/mysqld.sock,user=root`` or ``host=db1,port=3307,user=x``."""
        fields: dict[str, str] = {}
        for part in dsn.split(","):
            if not part.strip():
                continue
            k, sep, v = part.partition("=")
            if not sep or k.strip() not in ("socket", "host", "port", "user", "password"):
                raise RestoreError(
                    f"--target-dsn {mask_dsn(dsn)!r}: expected comma-separated "
                    "socket=,host=,port=,user=,password= fields"
                )
            fields[k.strip()] = v.strip()
        return cls(
            socket=fields.get("socket", ""),
            host=fields.get("host", "127.0.0.1"),
            port=int(fields.get("port", "3306")),
            user=fields.get("user", "root"),
            password=fields.get("password", ""),
        )

    def describe(self) -> str:
        """Where the server is; never the password."""
        return f"socket {self.socket}" if self.socket else f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return self.describe()

    @contextlib.contextmanager
    def args(self) -> Iterator[list[str]]:
        """Leading arguments for any MariaDB tool (the defaults file must come first)."""
        where = (
            [f"--socket={self.socket}"]
            if self.socket
            else [f"--host={self.host}", f"--port={self.port}", "--protocol=TCP"]
        )
        # Written even without a password: an empty one here overrides a password the
        # operator's ~/.my.cnf may hold for [client].
        parent = Path(self.cnf_dir) if self.cnf_dir else None
        if parent is not None:
            parent.mkdir(parents=True, exist_ok=True)
        d = Path(tempfile.mkdtemp(prefix=CNF_DIR_PREFIX, dir=parent))  # 0700
        try:
            cnf = d / "client.cnf"
            fd = os.open(cnf, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(
                    f"[client]\nuser={option_value(self.user)}\n"
                    f"password={option_value(self.password)}\n"
                )
            yield [f"--defaults-extra-file={cnf}", *where]
        finally:
            shutil.rmtree(d, ignore_errors=True)


def run_sql(
    conn: Conn, sql: str, *, database: str | None = None, timeout: float = 600
) -> list[list[str]]:
    """Run ``sql`` with the ``mariadb`` client; rows as lists of strings (tab-separated)."""
    client = find_tool("mariadb", "mysql")
    with conn.args() as a:
        cmd = [client, *a, "--batch", "--skip-column-names", "--raw", "-e", sql]
        if database:
            cmd.append(database)
        res = _run_client(conn, cmd, sql, timeout)
    if res.returncode != 0:
        raise DatabaseError(
            f"query on {conn.describe()} failed: {sql[:200]!r}: {res.stderr.strip()[-1000:]}"
        )
    return [line.split("\t") for line in res.stdout.splitlines()]


def _run_client(
    conn: Conn, cmd: list[str], sql: str, timeout: float
) -> subprocess.CompletedProcess[str]:
    # A client that does not answer in time is a database failure like any other
    # (a busy or still-starting server): callers that poll treat it as "not yet".
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise DatabaseError(
            f"query on {conn.describe()} did not answer in {timeout:g} s: {sql[:200]!r}"
        ) from None


def run_sql_dicts(conn: Conn, sql: str, *, timeout: float = 600) -> list[dict[str, str]]:
    """Like :func:`run_sql`, one dict per row keyed by column name."""
    client = find_tool("mariadb", "mysql")
    with conn.args() as a:
        cmd = [client, *a, "--batch", "--raw", "-e", sql]
        res = _run_client(conn, cmd, sql, timeout)
    if res.returncode != 0:
        raise DatabaseError(
            f"query on {conn.describe()} failed: {sql[:200]!r}: {res.stderr.strip()[-1000:]}"
        )
    lines = res.stdout.splitlines()
    if not lines:
        return []
    names = lines[0].split("\t")
    return [dict(zip(names, line.split("\t"), strict=False)) for line in lines[1:]]


def scalar(conn: Conn, sql: str) -> str | None:
    rows = run_sql(conn, sql)
    if not rows or not rows[0]:
        return None
    v = rows[0][0]
    return None if v == "NULL" else v


def check_call(
    cmd: Sequence[str],
    *,
    what: str,
    log: Path | None = None,
    stdin: int | None = None,
    timeout: float | None = None,
) -> None:
    """Run ``cmd``; on failure (or past ``timeout``) raise RestoreError with its output's tail."""
    try:
        _check_call(cmd, what=what, log=log, stdin=stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RestoreError(
            f"{what} did not finish in {timeout:g} s: {' '.join(cmd[:3])} ..."
        ) from None


def _check_call(
    cmd: Sequence[str],
    *,
    what: str,
    log: Path | None,
    stdin: int | None,
    timeout: float | None,
) -> None:
    if log is not None:
        with log.open("ab") as out:
            rc = subprocess.run(
                list(cmd),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=stdin,
                timeout=timeout,
                check=False,
            ).returncode
        tail = log.read_bytes()[-2000:].decode(errors="replace")
    else:
        res = subprocess.run(
            list(cmd), capture_output=True, stdin=stdin, timeout=timeout, check=False
        )
        rc = res.returncode
        tail = (res.stdout + res.stderr)[-2000:].decode(errors="replace")
    if rc != 0:
        raise RestoreError(f"{what} failed (exit {rc}): {' '.join(cmd[:3])} ...\n{tail}")
