"""The host's side of the DynamoDB catalog: record what the manifest committed.

After each shipping pass the shipper calls :meth:`CatalogSync.sync`: every
committed or flagged binlog not yet recorded is described in the catalog
(:meth:`DynamoCatalog.put_binlog`) with the host's copies as ``unverified``
(the functions verify them independently and move them on), and every base
backup in the manifest not yet recorded has its newest archive record put
(:meth:`DynamoCatalog.put_backup`). What was recorded is remembered in
``STATE_DIR/catalog-synced`` (one "TARGET KEY" per line), so a pass costs no
request once the catalog is up to date, and a catalog that was down is caught
up on the next pass.

A catalog failure never loses or blocks shipping: it is logged, counted
(``binlog_shipper_failures_total{stage="catalog"}``) and retried next pass.
Every write is idempotent, so a crash between a write and its line in the
file only repeats a write that changes nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from shipper.catalog.dynamodb import DynamoCatalog
from shipper.catalog.dynamodb_items import UNVERIFIED, BinlogEntry, CopyState
from shipper.config import Config
from shipper.errors import ShipperError
from shipper.keys import KeyProvider
from shipper.manifest import BinlogRow, Manifest
from shipper.records import latest_records
from shipper.storage import StorageBackend
from shipper.telemetry import Metrics

log = logging.getLogger(__name__)

SYNCED_FILE = "catalog-synced"
_CLOUD = {"s3": "aws", "gs": "gcp"}


def where(backend: StorageBackend, key: str) -> tuple[str, str, str]:
    """(cloud, bucket, key in the bucket) of ``key`` on ``backend``."""
    p = urlparse(backend.url)
    prefix = p.path.strip("/")
    return _CLOUD.get(p.scheme, "local"), p.netloc, f"{prefix}/{key}" if prefix else key


class CatalogSync:
    def __init__(
        self,
        catalog: DynamoCatalog,
        manifest: Manifest,
        state_dir: Path,
        backends: Sequence[StorageBackend],
        providers: Sequence[KeyProvider],
        *,
        tenant: str,
        metrics: Metrics | None = None,
    ) -> None:
        self.catalog = catalog
        self.manifest = manifest
        self.path = state_dir / SYNCED_FILE
        self.backends = list(backends)
        self.providers = list(providers)
        self.tenant = tenant
        self.metrics = metrics
        self.by = f"host:{os.uname().nodename}"
        self.synced: set[str] = set()
        with contextlib.suppress(FileNotFoundError):
            self.synced = set(self.path.read_text().splitlines())

    @classmethod
    def configured(
        cls,
        cfg: Config,
        manifest: Manifest,
        backends: Sequence[StorageBackend],
        providers: Sequence[KeyProvider],
        metrics: Metrics,
    ) -> CatalogSync | None:
        """The sync to ``[catalog]``, when one is configured."""
        if cfg.catalog is None:
            return None
        catalog = DynamoCatalog.from_url(cfg.catalog.url, cfg.catalog.options)
        return cls(
            catalog,
            manifest,
            cfg.state_dir,
            backends,
            providers,
            tenant=cfg.tenant,
            metrics=metrics,
        )

    def sync(self) -> int:
        """Record what is not recorded yet; returns how many objects were recorded."""
        done = 0
        try:
            # per target: a lineage conflict on one target only puts its copy elsewhere
            for backend in self.backends:
                for row in self.manifest.all(target=backend.url):
                    key = row.object_key
                    mark = f"{backend.url} {key}"
                    if row.state in ("committed", "flagged") and key and mark not in self.synced:
                        self._binlog(row, key)
                        self._copy(backend, key)
                        self._remember(mark)
                        done += 1
            done += self._backups()
        except ShipperError as e:
            if self.metrics is not None:
                self.metrics.failures.labels(stage="catalog").inc()
            log.warning(
                "catalog %s: %s; shipping goes on, the catalog is caught up next pass",
                self.catalog.url,
                e,
            )
        return done

    def _binlog(self, row: BinlogRow, key: str) -> None:
        assert row.sha256 is not None
        self.catalog.put_binlog(
            BinlogEntry(
                object_key=key,
                binlog_name=row.name,
                plaintext_sha256=row.sha256,
                plaintext_size=int(row.size or 0),
                first_ts=row.first_ts,
                last_ts=row.last_ts,
                gtid_previous=row.gtid_previous or "",
                gtid_set=row.gtid_end or "",
                file_status=row.file_status or "complete",
                server_uuid=row.server_uuid or "",
                host_state=row.state,
            )
        )

    def _copy(self, backend: StorageBackend, key: str) -> None:
        cloud, bucket, name = where(backend, key)
        self.catalog.record_copy(
            key,
            CopyState(
                cloud=cloud,
                bucket=bucket,
                key=name,
                state=UNVERIFIED,
                at=time.time(),
                by=self.by,
                detail="shipped and read back by the host",
            ),
        )

    def _backups(self) -> int:
        """Backups the manifest holds and the catalog does not: their newest records."""
        todo = {b["id"] for b in self.manifest.backups() if f"backup:{b['id']}" not in self.synced}
        if not todo or not self.backends:
            return 0
        store = self.backends[0]
        done = 0
        for rec in latest_records(store, self.providers, self.tenant):
            if rec.id not in todo:
                continue
            key = rec.record_key(self.tenant)
            self.catalog.put_backup(key, rec)
            if rec.object_key:
                self._copy(store, rec.object_key)
            self._remember(f"backup:{rec.id}")
            done += 1
        for bid in todo - {f.removeprefix("backup:") for f in self.synced}:
            self._remember(f"backup:{bid}")  # no record in the archive: registered elsewhere
        return done

    def _remember(self, what: str) -> None:
        self.synced.add(what)
        with self.path.open("a") as f:
            f.write(what + "\n")
