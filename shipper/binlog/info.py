"""What a scan reports: :class:`BinlogInfo` for the file, :class:`EventHeader` per event."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from shipper.binlog import events as E
from shipper.binlog.gtid import MariaDBGtidList, MySQLGtidSet
from shipper.binlog.index import TransactionIndex
from shipper.errors import BinlogFormatError


class BinlogFramingError(BinlogFormatError):
    """The bytes at ``offset`` of ``name`` cannot be read as a binlog event."""

    def __init__(self, name: str, offset: int, reason: str) -> None:
        super().__init__(f"{name}: not a readable binlog at offset {offset}: {reason}")
        self.name = name
        self.offset = offset
        self.reason = reason


Status = Literal[
    "complete", "in_use", "not_closed", "truncated", "crc_mismatch", "checksum_flag_mismatch"
]


class EventHeader(NamedTuple):
    """The common header of one event, where it sits, and whether its CRC verified."""

    pos: int
    end_pos: int  # pos + size: the byte after this event in *this* file
    log_pos: int  # the header's end_log_pos (the source's position in relay logs)
    timestamp: int
    type_code: int
    server_id: int
    size: int
    flags: int
    crc_ok: bool | None  # None: the file has no checksums (or the event is encrypted)

    @property
    def type_name(self) -> str:
        return E.event_name(self.type_code)


@dataclass(frozen=True)
class BinlogInfo:
    """What one pass over a binlog file found. See :attr:`status` for the verdict."""

    name: str
    size: int
    sha256: str
    server_version: str | None
    binlog_version: int | None
    checksum: str | None  # "CRC32", "NONE", or None before checksums existed (pre-5.6)
    server_id: int | None
    in_use: bool
    complete: bool
    truncated_at: int | None
    crc_error_at: int | None
    #: offset of a format description that says "no checksums" while the events
    #: carry CRC32s (a flipped flag): the file is not what it claims to be
    checksum_flag_error_at: int | None
    event_count: int
    first_timestamp: int | None
    last_timestamp: int | None
    gtid_previous: str
    gtid_added: str
    gtid_executed_end: str
    last_gtid: str | None
    gtid_flavor: Literal["mysql", "mariadb"] | None
    transactions: int
    index: TransactionIndex
    encrypted: bool
    encrypted_at: int | None
    unknown_event_types: tuple[int, ...]
    rotate_to: str | None  # the next file named by a final ROTATE

    @property
    def status(self) -> Status:
        """One word for the file, by precedence (first that applies):

        1. ``crc_mismatch`` - an event's CRC32 did not verify (``crc_error_at``)
        2. ``checksum_flag_mismatch`` - the format description says "no
           checksums" but the events carry CRC32s (``checksum_flag_error_at``);
           they are verified all the same
        3. ``truncated``    - the last event is cut off, or the file ends in zero
                              bytes where an event should start (``truncated_at``)
        4. ``complete``     - the last event is ROTATE or STOP
        5. ``in_use``       - no closing event and the FDE's in-use flag is set:
                              the server had it open (live file, or a crash)
        6. ``not_closed``   - no closing event and the flag is clear
        An encrypted file (MariaDB ``encrypt_binlog``) is framed past its
        START_ENCRYPTION event by the event lengths (the only clear field) but
        nothing else is read or verified; it is ``complete`` when it frames to
        its end and the in-use flag is clear.
        """
        if self.crc_error_at is not None:
            return "crc_mismatch"
        if self.checksum_flag_error_at is not None:
            return "checksum_flag_mismatch"
        if self.truncated_at is not None:
            return "truncated"
        if self.complete:
            return "complete"
        return "in_use" if self.in_use else "not_closed"

    @property
    def damage(self) -> str | None:
        """Why the file must not be archived as restorable (quarantined and
        flagged instead), or None."""
        if self.crc_error_at is not None:
            return f"event checksum mismatch at offset {self.crc_error_at}"
        if self.checksum_flag_error_at is not None:
            return (
                f"the format description at offset {self.checksum_flag_error_at} says "
                "no checksums, but the events carry CRC32s (a flipped flag)"
            )
        return None

    def gtid_set_previous(self) -> MySQLGtidSet | MariaDBGtidList:
        return _parse(self.gtid_flavor, self.gtid_previous)

    def gtid_set_end(self) -> MySQLGtidSet | MariaDBGtidList:
        return _parse(self.gtid_flavor, self.gtid_executed_end)


def _parse(flavor: str | None, text: str) -> MySQLGtidSet | MariaDBGtidList:
    return MariaDBGtidList.parse(text) if flavor == "mariadb" else MySQLGtidSet.parse(text)
