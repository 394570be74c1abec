"""Scan a binlog: one streaming pass, constant memory (see :mod:`.scanner`).

Problems the pipeline must *flag* are reported in :class:`BinlogInfo`
(``truncated_at``, ``crc_error_at``, ``in_use``, ``complete``, ``status``);
bytes that are not a binlog at all raise
:class:`~shipper.errors.BinlogFormatError` (a :class:`BinlogFramingError`
naming the file and offset).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import BinaryIO

from shipper.binlog import scanner
from shipper.binlog.info import BinlogFramingError, BinlogInfo, EventHeader, Status

__all__ = [
    "BinlogFramingError",
    "BinlogInfo",
    "EventHeader",
    "Status",
    "read_events",
    "scan_file",
    "scan_stream",
]


def scan_file(
    path: str | os.PathLike[str], *, on_event: Callable[[EventHeader], None] | None = None
) -> BinlogInfo:
    """Scan the binlog at ``path`` (one pass, constant memory)."""
    with open(path, "rb", buffering=0) as f:
        return scan_stream(f, name=os.path.basename(os.fspath(path)), on_event=on_event)


def scan_stream(
    f: BinaryIO, name: str = "<stream>", *, on_event: Callable[[EventHeader], None] | None = None
) -> BinlogInfo:
    """Scan a binary file object positioned at the start of a binlog.

    ``name`` is used in the result and in error messages. ``on_event``
    (optional) is called with every event's :class:`EventHeader`.
    """
    return scanner._Scanner(f, name, on_event).run()


def read_events(path: str | os.PathLike[str]) -> tuple[BinlogInfo, list[EventHeader]]:
    """Scan ``path`` and also return every event header (for ``inspect --events``)."""
    out: list[EventHeader] = []
    info = scan_file(path, on_event=out.append)
    return info, out
