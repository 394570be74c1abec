"""The host manifest as a catalog: fast and local, on the shipping host only."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from shipper import objects
from shipper.catalog.base import in_range
from shipper.manifest import Manifest
from shipper.restore.model import ArchivedBinlog, BackupInfo


class ManifestCatalog:
    """Reads ``manifest.sqlite``. The manifest holds one tenant (the host's), so
    ``tenant`` is not checked; rows not yet scanned (no server id) match any server.
    ``target``: give each binlog the key that target holds it under (its placement)."""

    def __init__(self, path: Path, target: str | None = None) -> None:
        self.path = path
        self.target = target

    def _rows(self) -> list[ArchivedBinlog]:
        with Manifest(self.path) as m:
            rows = [ArchivedBinlog.from_row(r) for r in m.all(target=self.target)]
        # The index is written beside the object after it verified: a committed row has one.
        return [
            replace(r, index_key=objects.index_key(r.object_key))
            if r.state == "committed" and r.object_key
            else r
            for r in rows
        ]

    def servers(self, tenant: str) -> list[int]:
        ids = {r.server_id for r in self._rows() if r.server_id is not None}
        ids |= {b.server_id for b in self._backups() if b.server_id is not None}
        return sorted(ids)

    def binlogs(
        self,
        tenant: str,
        server_id: int,
        *,
        since: int | None = None,
        until: int | None = None,
    ) -> list[ArchivedBinlog]:
        return [
            r
            for r in self._rows()
            if r.server_id in (None, server_id) and in_range(r, since, until)
        ]

    def _backups(self) -> list[BackupInfo]:
        with Manifest(self.path) as m:
            return [BackupInfo.from_row(b) for b in m.backups()]

    def backups(self, tenant: str, server_id: int) -> list[BackupInfo]:
        return [b for b in self._backups() if b.server_id in (None, server_id)]

    def confirms(self, key: str) -> bool:
        return False  # the manifest says what was archived, not what is still there
