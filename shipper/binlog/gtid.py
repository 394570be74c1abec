"""GTID values and GTID sets of both servers, in the text form the servers print.

MySQL's (``uuid:gno``; a set is intervals per source and tag) are in
:mod:`shipper.binlog.gtid_mysql`; MariaDB's (``domain-server-seq``; the server
keeps a list, the last sequence per domain and server) in
:mod:`shipper.binlog.gtid_mariadb`. Both raise :class:`GtidSetFormatError`
(:mod:`shipper.binlog.gtid_errors`). This module is where the rest of the
project imports them from, and where :func:`parse_gtid_set` tells the two
apart by shape.

Both set types are frozen values: operations return new objects. While
scanning a binlog the parser uses the ``*Builder`` classes, which append in
O(1).
"""

from __future__ import annotations

from shipper.binlog.gtid_errors import GtidSetFormatError
from shipper.binlog.gtid_mariadb import (
    MARIADB_GTID_RE,
    MariaDBGtid,
    MariaDBGtidList,
    MariaDBGtidListBuilder,
)
from shipper.binlog.gtid_mysql import MySQLGtid, MySQLGtidSet, MySQLGtidSetBuilder, format_uuid

__all__ = [
    "GtidSetFormatError",
    "MariaDBGtid",
    "MariaDBGtidList",
    "MariaDBGtidListBuilder",
    "MySQLGtid",
    "MySQLGtidSet",
    "MySQLGtidSetBuilder",
    "format_uuid",
    "parse_gtid_set",
]


def parse_gtid_set(text: str) -> MySQLGtidSet | MariaDBGtidList:
    """Parse either flavour, telling them apart by shape (``d-s-n`` vs ``uuid:...``)."""
    t = text.strip()
    if not t:
        return MySQLGtidSet()
    first = t.split(",")[0].strip()
    if MARIADB_GTID_RE.match(first):
        return MariaDBGtidList.parse(t)
    return MySQLGtidSet.parse(t)
