"""Writing one binlog to the host's write targets, one placement per target.

Each target gets the same conditional put, verification and transaction
index; each result is recorded as that target's placement in the manifest (the
key can differ per target: a lineage conflict on one target only). A target
that fails as a whole (bucket missing, access denied, endpoint down) is taken
out of the pass after its first failure and reported once, with the number of
binlogs it held back, instead of once per binlog. A call that gave up on
transient failures while the target kept answering other calls is not the
target failing: that binlog is placed again (:meth:`TargetWriter.place`).
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


#: placements of one binlog on one target in a pass, while the target answers others
PLACE_TRIES = 3


def _answered(backend: StorageBackend) -> int | None:
    """How many calls the target has answered (``RetryingBackend.answered``; None for a
    backend without the retry wrapper)."""
    n = getattr(backend, "answered", None)
    return n if isinstance(n, int) else None


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
        (the key it is under there, whether we wrote it).

        Tried again (up to ``PLACE_TRIES`` times) when a call of it gave up on
        transient failures while the target went on answering calls: the failures
        were that call's own (a throttled request, a reset connection), not an outage,
        and giving up on the binlog would hold back every later one until the next
        pass. A target that answered nothing meanwhile is down: the error is raised
        at once (the caller takes the target out of the pass, see :meth:`failed`).
        Once the object is put, a new try goes on from its verification; placing
        again from the start would be safe too (puts are conditional and what is there
        is verified), only slower."""
        put: tuple[str, bool] | None = None
        for attempt in range(1, PLACE_TRIES + 1):
            before = _answered(backend)
            try:
                if put is None:
                    put = self.writer.put(backend, key, b, self._lineage_conflict(b.name))
                return self._verify_and_index(url, backend, *put, b, index, lineage)
            except StorageError as e:
                after = _answered(backend)
                answered = 0 if before is None or after is None else after - before
                if not e.transient or attempt == PLACE_TRIES or url in self.down or not answered:
                    raise
                events.emit(
                    "placement_retried",
                    f"binlog {b.name} on {url}: {e}; the target answered {answered} "
                    f"call(s) meanwhile: placing it again ({attempt + 1} of {PLACE_TRIES})",
                    tenant=self.tenant,
                    level=logging.WARNING,
                    error=e,
                    target=url,
                    binlog=b.name,
                    retry_count=self._attempts(b.name),
                    placement=attempt + 1,
                )
        raise AssertionError("unreachable")  # pragma: no cover

    def _verify_and_index(
        self,
        url: str,
        backend: StorageBackend,
        k: str,
        wrote: bool,
        b: SealedBinlog,
        index: bytes | None,
        lineage: int | None,
    ) -> tuple[str, bool]:
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
