"""What a base backup holds, read from its bytes as they stream past.

Pure: no storage, no database. Both scanners are fed the backup's plaintext
in pieces of any size (``feed``) while ``backup take`` seals it, or while
``backup verify`` decrypts it into a hash sink, so neither needs the backup on
disk nor more than a few KiB of memory.

**mysqldump** (:class:`DumpScanner`): the databases are the ``CREATE
DATABASE`` and ``USE`` lines (only line starts are looked at: a dump's INSERT
lines can be megabytes long and are skipped, never buffered); the header
(first 64 KiB) holds the ``CHANGE MASTER TO`` coordinates; the last line must
be mysqldump's ``-- Dump completed`` comment.

**mariabackup** (:class:`XbstreamScanner`): an xbstream is a sequence of
chunks, all integers little-endian::

    magic    8  b"XBSTCK01"
    flags    1  bit 0: ignorable (an unknown chunk type may be skipped)
    type     1  b"P" payload, b"E" end of file, (b"S" sparse payload: xtrabackup 8)
    pathlen  4
    path     pathlen bytes, the member's path relative to the datadir
    -- type P only:
    length   8  payload length
    offset   8  where the payload goes in the member
    crc32    4  zlib CRC-32 of the payload
    payload  length bytes

A member is one or more P chunks then one E chunk. The databases are the
first path component of the members that sit in a directory (``app/t.ibd``,
``app/db.opt``), decoded from the server's filename encoding (``@XXXX``).
Every payload's CRC-32 is checked, and the small ``xtrabackup_info`` and
``xtrabackup_binlog_info`` members are kept, so verification can read the
coordinates from the stream itself.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterable

from shipper.errors import IntegrityError

#: databases every server has; a backup's *user* databases are the others
SYSTEM_DATABASES = frozenset({"information_schema", "performance_schema", "mysql", "sys"})

_XB_MAGIC = b"XBSTCK01"
_XB_HEAD = struct.Struct("<8sBcI")  # magic, flags, type, path length
_XB_PAYLOAD = struct.Struct("<QQI")  # length, offset, crc32
_XB_KEEP = frozenset({"xtrabackup_info", "xtrabackup_binlog_info"})
_XB_KEEP_MAX = 1 << 16
_XB_PATH_MAX = 1 << 12
_FS_CHAR = re.compile(r"@([0-9a-fA-F]{4})")

_DUMP_LINE = re.compile(
    rb"\n(?:CREATE DATABASE (?:/\*!32312 IF NOT EXISTS\*/ )?|USE )`((?:[^`\n]|``)+)`"
)
_LINE_MAX = 4096  # a CREATE DATABASE / USE line is short; longer lines are data
_HEAD_MAX = 1 << 16


def user_databases(names: Iterable[str]) -> set[str]:
    """``names`` without the system databases and ``#mysql50#`` (a stray directory)."""
    return {n for n in names if n and n not in SYSTEM_DATABASES and not n.startswith("#mysql50#")}


def decode_fs_name(name: str) -> str:
    """``my@002ddb`` -> ``my-db``: the server's encoding of a database name as a directory."""
    return _FS_CHAR.sub(lambda m: chr(int(m[1], 16)), name)


class DumpScanner:
    """Databases, header and completeness of a mysqldump / mariadb-dump stream."""

    def __init__(self) -> None:
        self.databases: set[str] = set()
        self.head = bytearray()
        self.tail = b""
        self.size = 0
        # The unfinished last line, from its newline, while it may still be a CREATE/USE
        # line; b"" when it is too long to be one. The stream starts at a line start.
        self._carry = b"\n"

    def feed(self, b: bytes) -> None:
        if not b:
            return
        self.size += len(b)
        if len(self.head) < _HEAD_MAX:
            self.head += b[: _HEAD_MAX - len(self.head)]
        self.tail = (self.tail + b[-512:])[-512:]
        nl = b.find(b"\n")
        if nl < 0:  # still inside the carried line
            fits = self._carry and len(self._carry) + len(b) <= _LINE_MAX
            self._carry = self._carry + b if fits else b""
            return
        if self._carry:
            self._match(_DUMP_LINE.match(self._carry + b[:nl]))
        # One regex pass over the complete lines (no Python step per line: a dump
        # taken with --skip-extended-insert has millions of them).
        last = b.rfind(b"\n")
        for m in _DUMP_LINE.finditer(b, nl, last):
            self._match(m)
        self._carry = b[last:] if len(b) - last <= _LINE_MAX else b""

    def _match(self, m: re.Match[bytes] | None) -> None:
        if m is not None:
            self.databases.add(m[1].decode(errors="replace").replace("``", "`"))

    @property
    def completed(self) -> bool:
        """mysqldump's last line: ``-- Dump completed on 2026-11-24 10:41:07``."""
        last = self.tail.rstrip(b"\n").rsplit(b"\n", 1)[-1]
        return last.startswith(b"-- Dump completed")

    @property
    def header(self) -> str:
        return bytes(self.head).decode(errors="replace")


class XbstreamScanner:
    """Member names (and so databases) of an xbstream, checking every chunk as it passes."""

    def __init__(self) -> None:
        self.members: set[str] = set()
        self.kept: dict[str, bytes] = {}
        self.chunks = 0
        self.size = 0
        self._buf = bytearray()  # the current chunk's header, while it is incomplete
        self._skip = 0  # payload bytes of the current chunk still to come
        self._crc = 0
        self._want_crc = 0
        self._path = ""
        self._keep: bytearray | None = None

    def feed(self, b: bytes) -> None:
        view = memoryview(b)
        self.size += len(view)
        while True:
            if self._skip:
                if not view:
                    return
                part = view[: self._skip]
                self._crc = zlib.crc32(part, self._crc)
                if self._keep is not None and len(self._keep) < _XB_KEEP_MAX:
                    self._keep += part
                self._skip -= len(part)
                view = view[len(part) :]
                if not self._skip:
                    self._end_payload()
                continue
            need = self._header_size()
            if len(self._buf) < need:
                if not view:
                    return
                take = need - len(self._buf)
                self._buf += view[:take]
                view = view[take:]
                continue
            self._start_chunk()

    def _header_size(self) -> int:
        """Bytes the current chunk's header needs, as far as the buffer tells."""
        if len(self._buf) < _XB_HEAD.size:
            return _XB_HEAD.size
        magic, flags, kind, plen = _XB_HEAD.unpack_from(self._buf)
        at = self.size - len(self._buf)
        if magic != _XB_MAGIC:
            raise IntegrityError(
                f"xbstream: no chunk magic near offset {at} (found {magic!r}): not a "
                "mariabackup --stream=xbstream backup, or a damaged one"
            )
        if kind not in (b"P", b"E"):
            # Even an "ignorable" chunk (flags & 1) cannot be skipped without its length.
            raise IntegrityError(
                f"xbstream: chunk type {kind!r} (flags {flags}) near offset {at} is "
                "not one this reader knows (P, E)"
            )
        if plen > _XB_PATH_MAX:
            raise IntegrityError(f"xbstream: member path of {plen} bytes near offset {at}")
        size: int = _XB_HEAD.size + plen
        return size + _XB_PAYLOAD.size if kind == b"P" else size

    def _start_chunk(self) -> None:
        _magic, _flags, kind, plen = _XB_HEAD.unpack_from(self._buf)
        path = bytes(self._buf[_XB_HEAD.size : _XB_HEAD.size + plen]).decode(errors="replace")
        self.members.add(path)
        self.chunks += 1
        if kind == b"P":
            length, _offset, crc = _XB_PAYLOAD.unpack_from(self._buf, _XB_HEAD.size + plen)
            self._path, self._want_crc, self._crc = path, crc, 0
            self._keep = bytearray(self.kept.get(path, b"")) if path in _XB_KEEP else None
            self._skip = length
            if not length:
                self._end_payload()
        self._buf.clear()

    def _end_payload(self) -> None:
        if self._crc != self._want_crc:
            raise IntegrityError(
                f"xbstream: member {self._path}: payload CRC-32 {self._crc:08x}, "
                f"its chunk header says {self._want_crc:08x}"
            )
        if self._keep is not None:
            self.kept[self._path] = bytes(self._keep)
        self._keep = None

    def finish(self) -> None:
        """The stream must end on a chunk boundary, after at least one chunk."""
        if self._buf or self._skip:
            raise IntegrityError(
                f"xbstream: ends inside a chunk of {self._path or 'a member'} "
                f"(after {self.size} bytes): the backup is truncated"
            )
        if not self.chunks:
            raise IntegrityError("xbstream: the stream is empty")

    @property
    def databases(self) -> set[str]:
        return {decode_fs_name(m.split("/", 1)[0]) for m in self.members if "/" in m}

    def text(self, member: str) -> str:
        return self.kept.get(member, b"").decode(errors="replace")


def check(tool: str, scanner: DumpScanner | XbstreamScanner, expected: set[str]) -> list[str]:
    """What is wrong with a backup whose bytes ``scanner`` saw: it must be whole and hold
    every database in ``expected`` (empty list: nothing)."""
    problems = []
    if isinstance(scanner, XbstreamScanner):
        try:
            scanner.finish()
        except IntegrityError as e:
            problems.append(str(e))
        if "xtrabackup_info" not in scanner.members:
            problems.append("the xbstream has no xtrabackup_info member")
    elif not scanner.completed:
        problems.append(
            "the dump does not end with mysqldump's '-- Dump completed' line: it was cut short"
        )
    missing = sorted(expected - scanner.databases)
    if missing:
        found = sorted(user_databases(scanner.databases))
        problems.append(
            f"it holds no {', '.join(missing)} (the {tool} backup holds "
            f"{', '.join(found) or 'no user database'})"
        )
    return problems
