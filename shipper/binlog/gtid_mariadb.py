"""MariaDB GTIDs and GTID lists, in the text form the server itself prints.

MariaDB (10.0+) identifies a transaction by ``domain-server-seq``. What the
server keeps is not a set but a *list*: the last sequence number per
(domain, server) pair (``@@gtid_binlog_state``, the ``Gtid_list`` event), of
which the most recent per domain is the *position* (``@@gtid_binlog_pos``).
:class:`MariaDBGtidList` keeps entries grouped by domain, in ascending domain
order, with the most recent entry of each domain last in its group, so the
position is always well defined.

:class:`MariaDBGtidList` is a frozen value: operations return new objects.
While scanning a binlog the parser uses :class:`MariaDBGtidListBuilder`, which
appends in O(1).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from shipper.binlog.gtid_errors import GtidSetFormatError

#: the text form of one MariaDB GTID; ``parse_gtid_set`` tells the flavours apart by it
MARIADB_GTID_RE = re.compile(r"^(\d+)-(\d+)-(\d+)$")
_U32 = (1 << 32) - 1
_U64 = (1 << 64) - 1


@dataclass(frozen=True, order=True)
class MariaDBGtid:
    """One MariaDB GTID, ``domain-server-seq``."""

    domain: int
    server_id: int
    seq: int

    def __str__(self) -> str:
        return f"{self.domain}-{self.server_id}-{self.seq}"

    @classmethod
    def parse(cls, text: str) -> MariaDBGtid:
        m = MARIADB_GTID_RE.match(text.strip())
        if not m:
            raise GtidSetFormatError(f"not a MariaDB GTID: {text!r}")
        d, s, n = (int(x) for x in m.groups())
        if d > _U32 or s > _U32 or n > _U64:
            raise GtidSetFormatError(f"MariaDB GTID out of range: {text!r}")
        return cls(d, s, n)


@dataclass(frozen=True)
class MariaDBGtidList:
    """A MariaDB GTID list / binlog state: one entry per (domain, server).

    Entries are grouped by ascending domain; within a domain the most recent
    entry is last. ``position()`` gives ``@@gtid_binlog_pos`` (the most recent
    per domain). ``a <= b`` means every entry of ``a`` is reached by ``b``
    (same domain and server, sequence not lower).
    """

    entries: tuple[MariaDBGtid, ...] = ()

    flavor = "mariadb"

    @classmethod
    def parse(cls, text: str) -> MariaDBGtidList:
        b = MariaDBGtidListBuilder()
        for part in text.split(","):
            if part.strip():
                b.add(MariaDBGtid.parse(part))
        return b.freeze()

    def __str__(self) -> str:
        return ",".join(str(g) for g in self.entries)

    def __repr__(self) -> str:
        return f"MariaDBGtidList({str(self)!r})"

    def __bool__(self) -> bool:
        return bool(self.entries)

    def __iter__(self) -> Iterator[MariaDBGtid]:
        return iter(self.entries)

    def position(self) -> MariaDBGtidList:
        """The most recent GTID of each domain (what ``@@gtid_binlog_pos`` shows)."""
        last: dict[int, MariaDBGtid] = {}
        for g in self.entries:
            last[g.domain] = g
        return MariaDBGtidList(tuple(last[d] for d in sorted(last)))

    def domains(self) -> tuple[int, ...]:
        return tuple(sorted({g.domain for g in self.entries}))

    def get(self, domain: int, server_id: int) -> int | None:
        for g in self.entries:
            if g.domain == domain and g.server_id == server_id:
                return g.seq
        return None

    def union(self, other: MariaDBGtidList) -> MariaDBGtidList:
        """Highest sequence per (domain, server); ``other`` counts as more recent on ties."""
        b = MariaDBGtidListBuilder(self)
        for g in other.entries:
            cur = b.get(g.domain, g.server_id)
            if cur is None or g.seq >= cur:
                b.add(g)
        return b.freeze()

    def subtract(self, other: MariaDBGtidList) -> MariaDBGtidList:
        """Entries of ``self`` that ``other`` has not reached."""
        return MariaDBGtidList(
            tuple(
                g
                for g in self.entries
                if (o := other.get(g.domain, g.server_id)) is None or o < g.seq
            )
        )

    def contains(self, gtid: MariaDBGtid | str) -> bool:
        g = MariaDBGtid.parse(gtid) if isinstance(gtid, str) else gtid
        cur = self.get(g.domain, g.server_id)
        return cur is not None and cur >= g.seq

    def issubset(self, other: MariaDBGtidList) -> bool:
        return not self.subtract(other)

    def __contains__(self, gtid: object) -> bool:
        return isinstance(gtid, (MariaDBGtid, str)) and self.contains(gtid)

    def __or__(self, other: MariaDBGtidList) -> MariaDBGtidList:
        return self.union(other)

    def __sub__(self, other: MariaDBGtidList) -> MariaDBGtidList:
        return self.subtract(other)

    def __le__(self, other: MariaDBGtidList) -> bool:
        return self.issubset(other)

    def __lt__(self, other: MariaDBGtidList) -> bool:
        return self != other and self.issubset(other)

    def __ge__(self, other: MariaDBGtidList) -> bool:
        return other.issubset(self)

    def __gt__(self, other: MariaDBGtidList) -> bool:
        return self != other and other.issubset(self)


class MariaDBGtidListBuilder:
    """Mutable binlog state: ``add`` makes the GTID the most recent of its domain."""

    def __init__(self, start: MariaDBGtidList | None = None) -> None:
        self._d: dict[int, dict[int, int]] = {}  # domain -> {server: seq}, recent last
        if start is not None:
            for g in start.entries:
                self.add(g)

    def add(self, g: MariaDBGtid) -> None:
        self.add3(g.domain, g.server_id, g.seq)

    def add3(self, domain: int, server_id: int, seq: int) -> None:
        servers = self._d.setdefault(domain, {})
        servers.pop(server_id, None)
        servers[server_id] = seq

    def get(self, domain: int, server_id: int) -> int | None:
        return self._d.get(domain, {}).get(server_id)

    def freeze(self) -> MariaDBGtidList:
        return MariaDBGtidList(
            tuple(MariaDBGtid(d, s, n) for d in sorted(self._d) for s, n in self._d[d].items())
        )
