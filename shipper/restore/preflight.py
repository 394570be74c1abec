"""Before a base backup starts: what the server is, and whether the tool can do its job.

``backup take`` asks the server (``SELECT @@server_id, VERSION(), CURRENT_USER(),
@@datadir``, ``SHOW DATABASES``, ``SHOW GRANTS``), then :func:`check_ready`
refuses -- before the tool runs, so nothing is written anywhere -- when the
account lacks a privilege the tool needs (named, with the GRANT that fixes it,
see :mod:`shipper.restore.privileges`) or, for mariabackup, cannot read the
datadir. It also says which user databases the finished backup must hold: for
mysqldump every one SHOW DATABASES lists, for mariabackup every database
directory in the datadir (one with ``db.opt`` or a table); with
``--databases``, those.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shipper.errors import RestoreError
from shipper.restore.contents import decode_fs_name, user_databases
from shipper.restore.privileges import Grants, grant_statements, missing_privileges, parse_grants
from shipper.restore.tools import Conn, run_sql


@dataclass(frozen=True)
class ServerFacts:
    """What ``backup take`` learns from the server before it starts the tool."""

    server_id: int
    version: str
    #: CURRENT_USER(): the account the privileges are checked for (``user@host``)
    account: str
    datadir: str
    #: SHOW DATABASES as that account
    databases: tuple[str, ...]
    grants: Grants

    @property
    def mysql(self) -> bool:
        return "mariadb" not in self.version.lower()


def probe_server(conn: Conn) -> ServerFacts:
    (row,) = run_sql(conn, "SELECT @@server_id, VERSION(), CURRENT_USER(), @@datadir")
    return ServerFacts(
        server_id=int(row[0]),
        version=row[1],
        account=row[2],
        datadir=row[3],
        databases=tuple(r[0] for r in run_sql(conn, "SHOW DATABASES")),
        grants=parse_grants(r[0] for r in run_sql(conn, "SHOW GRANTS")),
    )


def _datadir_databases(datadir: Path) -> set[str]:
    """The databases in the datadir: directories holding ``db.opt`` or a table (``.frm``).

    The server lists *every* directory as a database; one holding neither (a
    binlog directory, ``lost+found``) has nothing mariabackup would copy.
    """
    out = []
    for p in datadir.iterdir():
        if not p.is_dir() or p.name.startswith(("#", ".")):
            continue
        try:
            holds = (p / "db.opt").exists() or next(p.glob("*.frm"), None) is not None
        except OSError:  # unreadable: assume a database; mariabackup will say why it fails
            holds = True
        if holds:
            out.append(decode_fs_name(p.name))
    return user_databases(out)


def check_ready(tool: str, facts: ServerFacts, databases: Sequence[str] = ()) -> set[str]:
    """Refuse to start ``tool`` without the privileges (and datadir access) it needs.

    Returns the user databases the backup must then contain.
    """
    problems = []
    missing = missing_privileges(tool, facts.grants, databases, mysql=facts.mysql)
    if missing:
        problems.append(
            f"user {facts.account} lacks {', '.join(map(str, missing))} (needed by "
            f"{_NEEDED_BY[tool]}); grant them with:\n  "
            + "\n  ".join(grant_statements(missing, facts.account))
        )
    # mysqldump sees what SHOW DATABASES lists; mariabackup copies the datadir
    expected = set(databases) or user_databases(facts.databases)
    if tool == "mariabackup":
        datadir = Path(facts.datadir)
        if not datadir.is_dir():
            problems.append(
                f"the server's datadir {datadir} (@@datadir) is not on this host: "
                "run backup take --tool mariabackup on the database host"
            )
        elif not os.access(datadir, os.R_OK | os.X_OK):
            problems.append(
                f"the server's datadir {datadir} is not readable by this process "
                f"(uid {os.getuid()}): run it as the server's user, or add this user to its group"
            )
        else:
            expected = set(databases) or _datadir_databases(datadir)
    if problems:
        raise RestoreError(
            f"backup take --tool {tool} refused before starting: "
            + "; ".join(problems)
            + "\nNothing was backed up or recorded."
        )
    return expected


_NEEDED_BY = {
    "mariabackup": "mariabackup --backup",
    "mysqldump": "mysqldump --single-transaction --master-data --routines --events",
}
