"""The catalog the restore planner reads through.

A catalog answers four questions about one tenant's archive, whatever keeps
the answers: the host's SQLite manifest (:mod:`shipper.catalog.manifest`), a
scan of the archive itself (:mod:`shipper.catalog.archive`, the DR path), or
the fleet's DynamoDB table (a later issue). The same archive must give the
same plan through any of them.

Contract for an implementation:

* ``servers(tenant)``: the server ids that have anything archived, ascending.
* ``binlogs(tenant, server_id, since=, until=)``: every binlog of that server,
  *every lineage* (the planner picks and refuses lineage changes), as
  :class:`~shipper.restore.model.ArchivedBinlog` with ``state`` in the
  manifest's words (``committed`` = verified and indexed, ``flagged`` =
  quarantined, anything else = not restorable yet) and ``index_key`` naming its
  transaction index. When several items share a name, the one written last
  comes last. ``since``/``until`` (epoch seconds) may drop binlogs wholly
  outside the range; an implementation may also return more.
* ``backups(tenant, server_id)``: the usable base backups (deleted ones left
  out), oldest first.
* ``confirms(key)``: True only if this catalog saw the object at ``key`` in the
  archive while answering (a listing made now, or a verified record), so the
  plan-time existence check need not ask the store again. A catalog that
  cannot tell returns False and the object is stat'ed.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from shipper.restore.model import ArchivedBinlog, BackupInfo


@runtime_checkable
class Catalog(Protocol):
    def servers(self, tenant: str) -> list[int]: ...

    def binlogs(
        self,
        tenant: str,
        server_id: int,
        *,
        since: int | None = None,
        until: int | None = None,
    ) -> list[ArchivedBinlog]: ...

    def backups(self, tenant: str, server_id: int) -> list[BackupInfo]: ...

    def confirms(self, key: str) -> bool: ...


def in_range(b: ArchivedBinlog, since: int | None, until: int | None) -> bool:
    """Whether ``b`` may hold events in [since, until] (an undated binlog always may)."""
    if since is not None and b.last_ts is not None and b.last_ts < since:
        return False
    return not (until is not None and b.first_ts is not None and b.first_ts > until)
