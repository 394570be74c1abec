"""Pure binlog knowledge: the event parser, GTID sets, the transaction index.

Imports no cloud SDK and no database driver.

>>> info = scan_file("mysql-bin.000001")          # doctest: +SKIP
>>> info.status, info.gtid_executed_end           # doctest: +SKIP
"""

from shipper.binlog.events import event_name
from shipper.binlog.gtid import (
    GtidSetFormatError,
    MariaDBGtid,
    MariaDBGtidList,
    MySQLGtid,
    MySQLGtidSet,
    parse_gtid_set,
)
from shipper.binlog.index import Transaction, TransactionIndex
from shipper.binlog.parser import (
    BinlogFramingError,
    BinlogInfo,
    EventHeader,
    read_events,
    scan_file,
    scan_stream,
)

__all__ = [
    "BinlogFramingError",
    "BinlogInfo",
    "EventHeader",
    "GtidSetFormatError",
    "MariaDBGtid",
    "MariaDBGtidList",
    "MySQLGtid",
    "MySQLGtidSet",
    "Transaction",
    "TransactionIndex",
    "event_name",
    "parse_gtid_set",
    "read_events",
    "scan_file",
    "scan_stream",
]
