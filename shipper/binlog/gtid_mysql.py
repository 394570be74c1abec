"""MySQL GTIDs and GTID sets, in the text form the server itself prints.

MySQL (5.6+) identifies a transaction by ``uuid:gno`` (8.3+ also
``uuid:tag:gno``); a *set* is a union of closed intervals per source and tag,
printed by the server as ``uuid:1-5:7,uuid2:1-3`` with sources ordered by UUID
and, within a UUID, the untagged intervals first and then each tag in order:
``uuid:1-5:mytag:1-3``.

:class:`MySQLGtidSet` is a frozen value: operations return new objects. While
scanning a binlog the parser uses :class:`MySQLGtidSetBuilder`, which appends
in O(1).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from shipper.binlog.gtid_errors import GtidSetFormatError

Interval = tuple[int, int]  # closed: (first, last)

_UUID_RE = re.compile(
    r"^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$", re.IGNORECASE
)
_TAG_RE = re.compile(r"^[a-z_][a-z0-9_]{0,31}$", re.IGNORECASE)
_MAX_GNO = (1 << 63) - 1


def format_uuid(raw: bytes) -> str:
    """16 raw bytes (as stored in binlog events) -> ``8-4-4-4-12`` lowercase hex."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _norm_uuid(text: str) -> str:
    text = text.strip()
    if not _UUID_RE.match(text):
        raise GtidSetFormatError(f"not a server UUID: {text!r}")
    return format_uuid(bytes.fromhex(text.replace("-", "")))


def _norm_tag(text: str) -> str:
    if not _TAG_RE.match(text):
        raise GtidSetFormatError(f"not a GTID tag: {text!r}")
    return text.lower()


def _merge(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    out: list[list[int]] = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1] + 1:
            if b > out[-1][1]:
                out[-1][1] = b
        else:
            out.append([a, b])
    return tuple((a, b) for a, b in out)


def _subtract(xs: tuple[Interval, ...], ys: tuple[Interval, ...]) -> tuple[Interval, ...]:
    out: list[Interval] = []
    j = 0
    for a, b in xs:
        cur = a
        while j < len(ys) and ys[j][1] < cur:
            j += 1
        k = j
        while k < len(ys) and ys[k][0] <= b:
            ya, yb = ys[k]
            if ya > cur:
                out.append((cur, ya - 1))
            cur = max(cur, yb + 1)
            if cur > b:
                break
            k += 1
        if cur <= b:
            out.append((cur, b))
    return tuple(out)


def _fmt_intervals(ivs: tuple[Interval, ...]) -> str:
    return ":".join(str(a) if a == b else f"{a}-{b}" for a, b in ivs)


@dataclass(frozen=True, order=True)
class MySQLGtid:
    """One MySQL GTID: ``uuid:gno`` or, tagged (8.3+), ``uuid:tag:gno``."""

    uuid: str
    tag: str
    gno: int

    def __str__(self) -> str:
        return f"{self.uuid}:{self.tag}:{self.gno}" if self.tag else f"{self.uuid}:{self.gno}"

    @classmethod
    def parse(cls, text: str) -> MySQLGtid:
        parts = text.strip().split(":")
        if len(parts) not in (2, 3):
            raise GtidSetFormatError(f"not a MySQL GTID: {text!r}")
        tag = _norm_tag(parts[1]) if len(parts) == 3 else ""
        try:
            gno = int(parts[-1])
        except ValueError:
            raise GtidSetFormatError(f"not a MySQL GTID: {text!r}") from None
        if not 1 <= gno <= _MAX_GNO:
            raise GtidSetFormatError(f"GTID number out of range in {text!r}")
        return cls(_norm_uuid(parts[0]), tag, gno)


@dataclass(frozen=True)
class MySQLGtidSet:
    """A MySQL GTID set. ``str()`` gives the server's canonical text.

    ``a <= b`` means *a is a subset of b* (a partial order, as the server's
    ``GTID_SUBSET``); ``|`` is union, ``-`` is ``GTID_SUBTRACT``.
    """

    #: ((uuid, tag, ((first, last), ...)), ...), sorted by (uuid, tag), no empty entries
    entries: tuple[tuple[str, str, tuple[Interval, ...]], ...] = ()

    flavor = "mysql"

    @classmethod
    def parse(cls, text: str) -> MySQLGtidSet:
        b = MySQLGtidSetBuilder()
        text = text.strip()
        if not text:
            return cls()
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            fields = part.split(":")
            uuid = _norm_uuid(fields[0])
            tag = ""
            if len(fields) == 1:
                raise GtidSetFormatError(f"GTID set entry without intervals: {part!r}")
            for item in fields[1:]:
                item = item.strip()
                if item and (item[0].isalpha() or item[0] == "_"):
                    tag = _norm_tag(item)
                    continue
                try:
                    lo_s, _, hi_s = item.partition("-")
                    lo, hi = int(lo_s), int(hi_s) if hi_s else int(lo_s)
                except ValueError:
                    raise GtidSetFormatError(f"bad interval {item!r} in {part!r}") from None
                if not 1 <= lo <= hi <= _MAX_GNO:
                    raise GtidSetFormatError(f"bad interval {item!r} in {part!r}")
                b.add_interval(uuid, tag, lo, hi)
        return b.freeze()

    def __str__(self) -> str:
        return self.to_string()

    def to_string(self, separator: str = ",") -> str:
        """Canonical text; the server itself separates UUIDs with ``",\\n"``."""
        out: list[str] = []
        last_uuid = None
        for uuid, tag, ivs in self.entries:
            piece = f"{tag}:{_fmt_intervals(ivs)}" if tag else _fmt_intervals(ivs)
            if uuid == last_uuid:
                out[-1] += ":" + piece
            else:
                out.append(f"{uuid}:{piece}")
            last_uuid = uuid
        return separator.join(out)

    def __repr__(self) -> str:
        return f"MySQLGtidSet({self.to_string()!r})"

    def __bool__(self) -> bool:
        return bool(self.entries)

    def _map(self) -> dict[tuple[str, str], tuple[Interval, ...]]:
        return {(u, t): ivs for u, t, ivs in self.entries}

    @staticmethod
    def _from_map(m: dict[tuple[str, str], tuple[Interval, ...]]) -> MySQLGtidSet:
        return MySQLGtidSet(tuple((u, t, ivs) for (u, t), ivs in sorted(m.items()) if ivs))

    def union(self, other: MySQLGtidSet) -> MySQLGtidSet:
        m = self._map()
        for k, ivs in other._map().items():
            m[k] = _merge(m.get(k, ()) + ivs)
        return self._from_map(m)

    def subtract(self, other: MySQLGtidSet) -> MySQLGtidSet:
        om = other._map()
        return self._from_map({k: _subtract(ivs, om.get(k, ())) for k, ivs in self._map().items()})

    def intersection(self, other: MySQLGtidSet) -> MySQLGtidSet:
        return self.subtract(self.subtract(other))

    def contains(self, gtid: MySQLGtid | str) -> bool:
        g = MySQLGtid.parse(gtid) if isinstance(gtid, str) else gtid
        for uuid, tag, ivs in self.entries:
            if uuid == g.uuid and tag == g.tag:
                return any(a <= g.gno <= b for a, b in ivs)
        return False

    def issubset(self, other: MySQLGtidSet) -> bool:
        return not self.subtract(other)

    def count(self) -> int:
        """Number of GTIDs in the set."""
        return sum(b - a + 1 for _, _, ivs in self.entries for a, b in ivs)

    def __contains__(self, gtid: object) -> bool:
        return isinstance(gtid, (MySQLGtid, str)) and self.contains(gtid)

    def __or__(self, other: MySQLGtidSet) -> MySQLGtidSet:
        return self.union(other)

    def __sub__(self, other: MySQLGtidSet) -> MySQLGtidSet:
        return self.subtract(other)

    def __and__(self, other: MySQLGtidSet) -> MySQLGtidSet:
        return self.intersection(other)

    def __le__(self, other: MySQLGtidSet) -> bool:
        return self.issubset(other)

    def __lt__(self, other: MySQLGtidSet) -> bool:
        return self != other and self.issubset(other)

    def __ge__(self, other: MySQLGtidSet) -> bool:
        return other.issubset(self)

    def __gt__(self, other: MySQLGtidSet) -> bool:
        return self != other and other.issubset(self)


class MySQLGtidSetBuilder:
    """Mutable accumulator used while scanning; O(1) for the usual gno+1 append."""

    def __init__(self, start: MySQLGtidSet | None = None) -> None:
        self._m: dict[tuple[str, str], list[list[int]]] = {}
        if start is not None:
            for u, t, ivs in start.entries:
                self._m[(u, t)] = [[a, b] for a, b in ivs]

    def add(self, uuid: str, tag: str, gno: int) -> None:
        self.add_interval(uuid, tag, gno, gno)

    def add_interval(self, uuid: str, tag: str, lo: int, hi: int) -> None:
        ivs = self._m.setdefault((uuid, tag), [])
        if ivs:
            last = ivs[-1]
            if last[0] <= lo <= last[1] + 1:  # extends (or is inside) the last interval
                if hi > last[1]:
                    last[1] = hi
                return
        ivs.append([lo, hi])
        if len(ivs) > 1 and ivs[-2][0] >= lo:  # out of order: renormalise
            self._m[(uuid, tag)] = [list(iv) for iv in _merge((a, b) for a, b in ivs)]

    def last_interval(self, uuid: str, tag: str) -> list[int]:
        """The highest interval of a source, *live*: the scanner extends it in place."""
        return self._m[(uuid, tag)][-1]

    def freeze(self) -> MySQLGtidSet:
        return MySQLGtidSet(
            tuple(
                (u, t, _merge((a, b) for a, b in ivs))
                for (u, t), ivs in sorted(self._m.items())
                if ivs
            )
        )
