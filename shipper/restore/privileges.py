"""What a backup tool needs from the server, checked before it starts.

A backup taken with too few privileges does not always fail: ``mysqldump
--all-databases`` run by a user who sees no database dumps nothing and exits
0. So ``backup take`` reads the user's ``SHOW GRANTS`` first and refuses,
naming every missing privilege and the ``GRANT`` statement that fixes it.

Pure: :func:`parse_grants` and :func:`missing_privileges` take text and
return values; the caller runs the query.

* mariabackup: RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR (MySQL: REPLICATION
  CLIENT) on ``*.*``; and the datadir readable by this process.
* mysqldump: SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT, PROCESS, RELOAD,
  BINLOG MONITOR, and SHOW DATABASES when it dumps all databases.

``--single-transaction --master-data`` need RELOAD (a brief ``FLUSH TABLES
WITH READ LOCK``) and BINLOG MONITOR (``SHOW MASTER STATUS``). SHOW DATABASES
is needed because without it the server lists only the databases the user
holds a privilege on, and then neither mysqldump nor the content check could
see the others. With ``--databases``, the per-database privileges may instead
be granted on each of those databases.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: one privilege, several names: MariaDB 10.5 renamed REPLICATION CLIENT
_SAME = {"REPLICATION CLIENT": "BINLOG MONITOR"}
_DUMP_PER_DB = ("SELECT", "SHOW VIEW", "TRIGGER", "LOCK TABLES", "EVENT")
_GRANT = re.compile(r"^GRANT (?P<privs>.+?) ON (?P<on>\S+) TO ", re.IGNORECASE)
_COLUMNS = re.compile(r"\([^)]*\)")


@dataclass(frozen=True)
class Grants:
    """The privileges of one account: global, and per database (name patterns)."""

    global_privileges: frozenset[str]
    database_privileges: tuple[tuple[str, frozenset[str]], ...] = ()

    def has(self, privilege: str, database: str | None = None) -> bool:
        p = _SAME.get(privilege, privilege)
        if "ALL" in self.global_privileges or p in self.global_privileges:
            return True
        if database is None:
            return False
        return any(
            ("ALL" in privs or p in privs) and _matches(pattern, database)
            for pattern, privs in self.database_privileges
        )


def _normalise(privs: str) -> frozenset[str]:
    out = set()
    for p in _COLUMNS.sub("", privs).split(","):
        name = " ".join(p.split()).upper()
        if name == "ALL PRIVILEGES":
            name = "ALL"
        out.add(_SAME.get(name, name))
    return frozenset(out)


def _unquote(name: str) -> str:
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "`'\"":
        return name[1:-1].replace(name[0] * 2, name[0])
    return name


def _matches(pattern: str, database: str) -> bool:
    """A GRANT's database pattern: ``%`` any, ``_`` one character, ``\\_`` a literal."""
    rx = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            rx += re.escape(pattern[i + 1])
            i += 2
            continue
        rx += ".*" if c == "%" else "." if c == "_" else re.escape(c)
        i += 1
    return re.fullmatch(rx, database) is not None


def parse_grants(lines: Iterable[str]) -> Grants:
    """``SHOW GRANTS`` output -> :class:`Grants` (table, column, proxy and role lines ignored)."""
    glob: set[str] = set()
    per_db: list[tuple[str, frozenset[str]]] = []
    for line in lines:
        m = _GRANT.match(line.strip())
        if not m or m["privs"].upper().startswith("PROXY"):
            continue
        privs = _normalise(m["privs"])
        db, _, table = m["on"].partition(".")
        if db == "*" and table == "*":
            glob |= privs
        elif table == "*":
            per_db.append((_unquote(db), privs))
    return Grants(frozenset(glob), tuple(per_db))


@dataclass(frozen=True, order=True)
class Missing:
    """A privilege the tool needs and the account lacks (on ``database``, or globally)."""

    privilege: str
    database: str | None = None

    def __str__(self) -> str:
        return self.privilege + (f" on `{self.database}`" if self.database else "")


def required(tool: str, *, mysql: bool = False) -> tuple[str, ...]:
    binlog = "REPLICATION CLIENT" if mysql else "BINLOG MONITOR"
    if tool == "mariabackup":
        return ("RELOAD", "PROCESS", "LOCK TABLES", binlog)
    return (*_DUMP_PER_DB, "PROCESS", "RELOAD", binlog, "SHOW DATABASES")


def missing_privileges(
    tool: str, grants: Grants, databases: Sequence[str] = (), *, mysql: bool = False
) -> list[Missing]:
    """What ``tool`` needs and ``grants`` lacks; ``databases``: mysqldump --databases."""
    out: list[Missing] = []
    for p in required(tool, mysql=mysql):
        if grants.has(p):
            continue
        if tool == "mysqldump" and p == "SHOW DATABASES" and databases:
            continue  # the named databases are visible through their own grants
        if tool == "mysqldump" and p in _DUMP_PER_DB and databases:
            out += [Missing(p, db) for db in databases if not grants.has(p, db)]
            continue
        out.append(Missing(p))
    return out


def grant_statements(missing: Sequence[Missing], account: str) -> list[str]:
    """``GRANT ... ON *.* TO 'user'@'host';`` (and one per database) that fix ``missing``."""
    user, _, host = account.rpartition("@")
    who = f"'{user}'@'{host}'" if user else f"'{account}'"
    on: dict[str, list[str]] = {}
    for m in missing:
        target = f"`{m.database}`.*" if m.database else "*.*"
        if m.privilege not in on.setdefault(target, []):
            on[target].append(m.privilege)
    return [f"GRANT {', '.join(privs)} ON {target} TO {who};" for target, privs in on.items()]
