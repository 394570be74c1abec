"""Writing one binlog to the host's write targets, one placement per target.

Each target gets the same conditional put, verification and transaction
index; each result is recorded as that target's placement in the manifest (the
key can differ per target: a lineage conflict on one target only). A target
that fails as a whole (bucket missing, access denied, endpoint down) is taken
out of the pass after its first failure and reported once, with the number of
binlogs it held back, instead of once per binlog.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from shipper import events, objects
from shipper.binlog import BinlogInfo
from shipper.errors import ObjectNotFound, ShipperError, StorageError
from shipper.manifest import Manifest
from shipper.pipeline.upload import ConflictHook, ObjectWriter, SealedBinlog
from shipper.storage import StorageBackend
from shipper.telemetry import Metrics, new_trace_id

log = logging.getLogger(__name__)

#: errors that say a target as a whole cannot be used now, not that one object is bad
#: (a missing bucket surfaces as ObjectNotFound from the put)
TARGET_ERRORS = (StorageError, ObjectNotFound)


@dataclass
class TargetDown:
    """A write target that failed as a whole during a pass."""

    url: str
    error: str
    #: binlogs (to ship or to backfill) not written to it this pass because of it
    blocked: int = 0


#: errors that say a target as a whole cannot be used right now, not that one object is bad
TARGET_ERRORS = (StorageError, ObjectNotFound)


@dataclass
class TargetWriter:
    #: (target URL as configured, backend) for every target the host writes
    targets: list[tuple[str, StorageBackend]]
    writer: ObjectWriter
    manifest: Manifest
    metrics: Metrics
    tenant: str
    #: targets that failed as a whole during the current pass
    down: dict[str, TargetDown] = field(default_factory=dict)
    #: (URL, backend) written only while a write target's circuit is open (failover.py)
    fallback: list[tuple[str, StorageBackend]] = field(default_factory=list)

    def sealed_binlog(
        self,
        name: str,
        staged: Path,
        sealed: Path,
        info: BinlogInfo,
        server_id: int,
        server_uuid: str,
        key: str,
        *,
        trace_id: str | None = None,
        fresh: bool = False,
    ) -> SealedBinlog:
        """What to upload for a scanned binlog, bound to the context its key implies;
        ``trace_id``: the binlog's span's (a fresh one when not given); ``fresh``: see
        :class:`SealedBinlog`."""
        fields, header_meta = objects.describe(
            info,
            tenant=self.tenant,
            server_id=server_id,
            server_uuid=server_uuid,
            trace_id=trace_id or new_trace_id(),
        )
        return SealedBinlog(
            name=name,
            staged=staged,
            sealed=sealed,
            sha256=info.sha256,
            size=info.size,
            context=objects.context_for_key(key),
            header_meta=header_meta,
            metadata=objects.build_metadata(fields),
            fresh=fresh,
        )

    def place(
        self,
        url: str,
        backend: StorageBackend,
        key: str,
        b: SealedBinlog,
        index: bytes | None,
        lineage: int | None = None,
    ) -> tuple[str, bool]:
        """Put, verify and index ``b`` on one target and record its placement; returns
        (the key it is under there, whether we wrote it)."""
        k, wrote = self.writer.put(backend, key, b, self._lineage_conflict(b.name))
        stat = self.writer.verify(backend, k, b)
        if index is not None:
            self.writer.put_index(backend, k, index, b, self.tenant)
        if wrote:
            self.metrics.upload(url)
        self.manifest.place(
            b.name, url, key=k, version=stat.version, envelope_size=stat.size, lineage=lineage
        )
        return k, wrote

    def failed(self, url: str, e: ShipperError, name: str | None = None) -> None:
        """Take ``url`` out of this pass: one report for the target, not one per binlog."""
        first = TargetDown(url, str(e))
        # setdefault: two worker threads may see the same target fail at once
        if self.down.setdefault(url, first) is first:
            self.metrics.failures.labels(stage="target").inc()
            self.metrics.failure(e.code, target=url)
            events.emit(
                "target_down",
                f"target {url} failed: {e}; skipped for the rest of this pass",
                tenant=self.tenant,
                level=logging.ERROR,
                error=e,
                target=url,
                binlog=name,
                retry_count=self._attempts(name),
            )
        if name is not None:
            self.manifest.place(name, url, key=None, error=str(e))

    def _attempts(self, name: str | None) -> int:
        row = self.manifest.get(name) if name else None
        return row.attempts if row is not None else 0

    def _lineage_conflict(self, name: str) -> ConflictHook:
        def hook(backend: StorageBackend, key: str, theirs: str) -> None:
            detail = {"target": backend.url, "key": key, "theirs_sha256": theirs}
            self.manifest.journal("lineage_conflict", name, detail)
            self.metrics.lineage.inc()
            events.emit(
                "lineage_conflict",
                f"{key} on {backend.url} holds a different {name}; ours goes to a lineage key",
                tenant=self.tenant,
                level=logging.ERROR,
                code="lineage_conflict",
                target=backend.url,
                binlog=name,
                key=key,
            )
            log.error(
                "LINEAGE CONFLICT: %s on %s holds a different %s (RESET MASTER or a "
                "rebuilt server?); not overwriting it, storing ours under a lineage key",
                key,
                backend.url,
                name,
            )

        return hook
