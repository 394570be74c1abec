"""Event type codes and the fixed parts of the binlog v4 format.

Every v4 event starts with a 19-byte common header::

    0  timestamp   u32  seconds since the epoch (statement start on the source)
    4  type_code   u8
    5  server_id   u32
    9  event_size  u32  header + body (+ 4-byte CRC32 when checksums are on)
   13  log_pos     u32  end position of the event in the *source's* binlog
   17  flags       u16

All integers are little-endian. The file begins with the 4-byte magic
``\\xfebin`` and then a FORMAT_DESCRIPTION_EVENT (or a START_EVENT_V3 in 4.0
files) that fixes the header length and the checksum algorithm of what follows.
"""

from __future__ import annotations

from typing import Final

MAGIC: Final = b"\xfebin"
HEADER_LEN: Final = 19
CRC_LEN: Final = 4

# flags of the common header
LOG_EVENT_BINLOG_IN_USE_F: Final = 0x0001
LOG_EVENT_IGNORABLE_F: Final = 0x0080

# checksum algorithm byte of the format description event
CHECKSUM_OFF: Final = 0
CHECKSUM_CRC32: Final = 1
CHECKSUM_UNDEF: Final = 255

# MySQL event types
UNKNOWN_EVENT: Final = 0
START_EVENT_V3: Final = 1
QUERY_EVENT: Final = 2
STOP_EVENT: Final = 3
ROTATE_EVENT: Final = 4
INTVAR_EVENT: Final = 5
RAND_EVENT: Final = 13
USER_VAR_EVENT: Final = 14
FORMAT_DESCRIPTION_EVENT: Final = 15
XID_EVENT: Final = 16
TABLE_MAP_EVENT: Final = 19
INCIDENT_EVENT: Final = 26
HEARTBEAT_LOG_EVENT: Final = 27
IGNORABLE_LOG_EVENT: Final = 28
ROWS_QUERY_LOG_EVENT: Final = 29
GTID_LOG_EVENT: Final = 33
ANONYMOUS_GTID_LOG_EVENT: Final = 34
PREVIOUS_GTIDS_LOG_EVENT: Final = 35
XA_PREPARE_LOG_EVENT: Final = 38
TRANSACTION_PAYLOAD_EVENT: Final = 40
GTID_TAGGED_LOG_EVENT: Final = 42

# MariaDB event types
ANNOTATE_ROWS_EVENT: Final = 160
BINLOG_CHECKPOINT_EVENT: Final = 161
MARIADB_GTID_EVENT: Final = 162
GTID_LIST_EVENT: Final = 163
START_ENCRYPTION_EVENT: Final = 164
QUERY_COMPRESSED_EVENT: Final = 165

#: type code -> name, for every type a MySQL 5.0-9.x or MariaDB 10.x/11.x server writes.
EVENT_NAMES: Final[dict[int, str]] = {
    0: "Unknown",
    1: "Start_v3",
    2: "Query",
    3: "Stop",
    4: "Rotate",
    5: "Intvar",
    6: "Load",
    7: "Slave",
    8: "Create_file",
    9: "Append_block",
    10: "Exec_load",
    11: "Delete_file",
    12: "New_load",
    13: "Rand",
    14: "User_var",
    15: "Format_desc",
    16: "Xid",
    17: "Begin_load_query",
    18: "Execute_load_query",
    19: "Table_map",
    20: "Write_rows_v0",
    21: "Update_rows_v0",
    22: "Delete_rows_v0",
    23: "Write_rows_v1",
    24: "Update_rows_v1",
    25: "Delete_rows_v1",
    26: "Incident",
    27: "Heartbeat",
    28: "Ignorable",
    29: "Rows_query",
    30: "Write_rows",
    31: "Update_rows",
    32: "Delete_rows",
    33: "Gtid",
    34: "Anonymous_Gtid",
    35: "Previous_gtids",
    36: "Transaction_context",
    37: "View_change",
    38: "XA_prepare",
    39: "Partial_update_rows",
    40: "Transaction_payload",
    41: "Heartbeat_v2",
    42: "Gtid_tagged",
    160: "Annotate_rows",
    161: "Binlog_checkpoint",
    162: "Gtid",  # MariaDB
    163: "Gtid_list",
    164: "Start_encryption",
    165: "Query_compressed",
    166: "Write_rows_compressed_v1",
    167: "Update_rows_compressed_v1",
    168: "Delete_rows_compressed_v1",
    169: "Write_rows_compressed",
    170: "Update_rows_compressed",
    171: "Delete_rows_compressed",
    172: "Partial_update_rows_compressed",
}


def event_name(type_code: int) -> str:
    """A readable name for ``type_code`` (``"Unknown_100"`` for codes no server documents;
    ``"Encrypted"`` for -1, the scanner's code for an event of an encrypted binlog)."""
    if type_code == -1:
        return "Encrypted"
    return EVENT_NAMES.get(type_code, f"Unknown_{type_code}")
