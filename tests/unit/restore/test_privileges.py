"""What each backup tool needs from the server, read from SHOW GRANTS (pure)."""

from __future__ import annotations

from shipper.restore.privileges import (
    Missing,
    grant_statements,
    missing_privileges,
    parse_grants,
)

README_USER = ["GRANT BINLOG MONITOR ON *.* TO `shipper`@`localhost` IDENTIFIED BY PASSWORD '*AB'"]
ROOT = [
    "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION",
    "GRANT PROXY ON ``@`%` TO `root`@`localhost` WITH GRANT OPTION",
]


def test_readme_grants_lack_everything_but_binlog_monitor() -> None:
    g = parse_grants(README_USER)
    dump = missing_privileges("mysqldump", g)
    assert [str(m) for m in dump] == [
        "SELECT",
        "SHOW VIEW",
        "TRIGGER",
        "LOCK TABLES",
        "EVENT",
        "PROCESS",
        "RELOAD",
        "SHOW DATABASES",
    ]
    assert [str(m) for m in missing_privileges("mariabackup", g)] == [
        "RELOAD",
        "PROCESS",
        "LOCK TABLES",
    ]
    assert grant_statements(dump, "shipper@localhost") == [
        "GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT, PROCESS, RELOAD, "
        "SHOW DATABASES ON *.* TO 'shipper'@'localhost';"
    ]


def test_all_privileges_lack_nothing() -> None:
    g = parse_grants(ROOT)
    assert missing_privileges("mysqldump", g) == []
    assert missing_privileges("mariabackup", g) == []


def test_mysql_spelling_of_binlog_monitor() -> None:
    g = parse_grants(["GRANT RELOAD, PROCESS, LOCK TABLES, REPLICATION CLIENT ON *.* TO 'b'@'%'"])
    assert missing_privileges("mariabackup", g) == []
    assert missing_privileges("mariabackup", g, mysql=True) == []
    short = parse_grants(["GRANT RELOAD, PROCESS, LOCK TABLES ON *.* TO 'b'@'%'"])
    assert missing_privileges("mariabackup", short, mysql=True) == [Missing("REPLICATION CLIENT")]


def test_named_databases_may_be_granted_per_database() -> None:
    g = parse_grants(
        [
            "GRANT PROCESS, RELOAD, BINLOG MONITOR ON *.* TO `d`@`localhost`",
            "GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT ON `shop`.* TO `d`@`localhost`",
            "GRANT ALL PRIVILEGES ON `app\\_%`.* TO `d`@`localhost`",
            "GRANT SELECT (id) ON `other`.`t` TO `d`@`localhost`",
        ]
    )
    assert missing_privileges("mysqldump", g, ["shop", "app_1"]) == []
    # "app\_%" does not match "appx1"; a column grant is no database grant.
    missing = missing_privileges("mysqldump", g, ["appx1", "other"])
    assert Missing("SELECT", "other") in missing and Missing("EVENT", "appx1") in missing
    assert (
        "GRANT SELECT, SHOW VIEW, TRIGGER, LOCK TABLES, EVENT ON `appx1`.* TO 'd'@'localhost';"
        in (grant_statements(missing, "d@localhost"))
    )
    # All databases: the per-database grants do not count, SHOW DATABASES is needed.
    assert Missing("SHOW DATABASES") in missing_privileges("mysqldump", g)
