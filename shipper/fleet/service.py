"""The verify-and-replicate service both clouds' functions call for one object.

``VerifyReplicate.process(key)``: verify the object where it landed
(:func:`shipper.fleet.verify.verify`), describe it in the catalog, record the
source copy, copy it to the other cloud (:func:`shipper.fleet.replicate.replicate`)
and record the replica. Handlers only turn their cloud's event into keys and
the :class:`Result` into metrics; everything else is here, shared.

Outcomes, and what they leave behind:

* replicated: both copies ``verified`` in the catalog (copied now, or the same
  bytes were already at the replica key).
* equivalent: the replica key already held another envelope of the same
  plaintext (the host drained its failover backlog there itself): it verified in
  full, so it is recorded ``verified`` with its own version and checksum, and
  counted like an identical copy (``verified`` only). No conflict, no alert.
* already: the catalog says the source copy verified and the replica copy is
  settled (``verified``, or a terminal ``lineage_conflict`` / ``integrity_failed``;
  a redelivered event): nothing is read or written again.
* integrity_failed: the object is tampered, truncated, not what its metadata
  says, or a binlog event's CRC32 fails. The source copy is recorded
  ``integrity_failed`` (terminal) and the object is never replicated.
* replica_integrity_failed: the source verified, but the replica key holds an
  object that claims the same plaintext and does not verify. The replica copy
  is recorded ``integrity_failed`` (terminal), alerted like any integrity
  failure (``integrity_failed`` metric + error log), never overwritten.
* lineage_conflict: the replica key holds another plaintext. Recorded on the
  replica copy, alerted (metric + error log), never overwritten.
* missing: the object was deleted before its event arrived; nothing recorded.
* outside_layout: a key the archive layout does not name; nothing read.

A data key that cannot be unwrapped (KMS denied, key disabled) and a storage
or catalog error are not the object's fault: they raise, the event is retried
and, past its retries, lands in the dead-letter queue. The catalog is untouched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from shipper.catalog.dynamodb import DynamoCatalog, Outcome
from shipper.catalog.dynamodb_items import (
    INTEGRITY_FAILED,
    LINEAGE_CONFLICT,
    VERIFIED,
    BinlogEntry,
    CopyState,
    item_for_key,
)
from shipper.errors import BinlogFormatError, IntegrityError, ObjectNotFound, ShipperError
from shipper.fleet import replicate as rep
from shipper.fleet.verify import Verified, verify
from shipper.keys import KeyProvider
from shipper.storage import StorageBackend

log = logging.getLogger(__name__)


class ReplicationFailed(ShipperError):
    """The object verified (and is recorded so), but copying it to the other cloud failed:
    retried with the event; the GCP function counts it (``replication_failed``)."""


METRICS = ("verified", "replicated", "integrity_failed", "lineage_conflicts", "bytes", "seconds")

#: replicate()'s outcome -> (the replica copy's catalog state, Result.status, the metric
#: it counts towards, the error log's alarm word). "identical" and "equivalent" count
#: nothing beyond the source's "verified": nothing was copied, nothing is wrong.
_OUTCOMES: dict[str, tuple[str, str, str, str]] = {
    rep.COPIED: (VERIFIED, "replicated", "replicated", ""),
    rep.IDENTICAL: (VERIFIED, "replicated", "", ""),
    rep.EQUIVALENT: (VERIFIED, "equivalent", "", ""),
    rep.INTEGRITY_FAILED: (
        INTEGRITY_FAILED,
        "replica_integrity_failed",
        "integrity_failed",
        "INTEGRITY FAILED (replica)",
    ),
    rep.CONFLICT: (LINEAGE_CONFLICT, "lineage_conflict", "lineage_conflicts", "LINEAGE CONFLICT"),
}
_DETAILS = {rep.COPIED: "copied", rep.IDENTICAL: "already there, identical"}


@dataclass(frozen=True)
class Store:
    """One cloud's copy of the archive: its backend and how the catalog names it."""

    backend: StorageBackend
    cloud: str
    bucket: str


@dataclass
class Result:
    key: str
    status: str
    tenant: str = ""
    server: str = ""
    counts: dict[str, float] = field(default_factory=dict)
    detail: str = ""


class VerifyReplicate:
    def __init__(
        self,
        source: Store,
        replica: Store | None,
        providers: Sequence[KeyProvider],
        catalog: DynamoCatalog,
        *,
        by: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = source
        self.replica = replica
        self.providers = list(providers)
        self.catalog = catalog
        self.by = by
        self.clock = clock

    def process(self, key: str) -> Result:
        started = time.monotonic()
        try:
            ref = item_for_key(key)
        except IntegrityError as e:
            log.error("not verifying %s/%s: %s", self.source.backend.url, key, e)
            return Result(key, "outside_layout", "unknown", "unknown", detail=str(e))
        res = Result(key, "", ref.tenant, str(ref.server_id))
        item = self.catalog.item(key)
        if item is not None and self._done(item.copies_for(ref.slot)):
            res.status = "already"
            return res
        try:
            v = verify(self.source.backend, key, self.providers)
        except ObjectNotFound as e:
            log.warning("%s/%s is gone before it was verified: %s", self.source.bucket, key, e)
            res.status = "missing"
            return res
        except (IntegrityError, BinlogFormatError) as e:
            return self._failed(res, key, str(e), started)
        res.counts["verified"] = 1
        res.counts["bytes"] = v.size
        if not self._describe(v):
            return self._failed(res, key, "the catalog describes another file at this key", started)
        _, old = self.catalog.record_copy(key, self._copy(self.source, v))
        if old is not None and old.state == INTEGRITY_FAILED:
            log.error("%s: failed verification before; not replicating it", key)
            res.status = "integrity_failed_before"
            return self._timed(res, started)
        res.status = "verified"
        if self.replica is not None:
            self._replicate(res, v)
        return self._timed(res, started)

    def _done(self, copies: dict[str, CopyState]) -> bool:
        src = copies.get(self.source.cloud)
        if src is None or src.state != VERIFIED:
            return False
        if self.replica is None:
            return True
        copy = copies.get(self.replica.cloud)
        # integrity_failed and lineage_conflict are terminal: reading both objects again
        # could not change them
        return copy is not None and copy.state in (VERIFIED, LINEAGE_CONFLICT, INTEGRITY_FAILED)

    def _replicate(self, res: Result, v: Verified) -> None:
        assert self.replica is not None
        try:
            r = rep.replicate(self.source.backend, self.replica.backend, v, self.providers)
        except ShipperError as e:
            raise ReplicationFailed(
                f"copying {v.key} to {self.replica.backend.url} failed: {e}"
            ) from e
        state, res.status, counter, alarm = _OUTCOMES[r.outcome]
        if alarm:
            log.error(
                "%s: %s; recorded, not overwritten",
                alarm,
                r.detail,
                extra={"tenant": res.tenant, "server": res.server, "key": v.key},
            )
            res.detail = r.detail
        elif r.outcome == rep.EQUIVALENT:
            # worth a line: it names the two envelopes (and versions) now both recorded
            log.info(
                "equivalent: %s; recorded verified",
                r.detail,
                extra={"tenant": res.tenant, "server": res.server, "key": v.key},
            )
        copy = CopyState(
            cloud=self.replica.cloud,
            bucket=self.replica.bucket,
            key=v.key,
            state=state,
            at=self.clock(),
            by=self.by,
            version=r.info.version,
            checksum=r.checksum,
            detail=r.detail or _DETAILS.get(r.outcome, ""),
        )
        self.catalog.record_copy(v.key, copy)
        if counter:
            res.counts[counter] = 1

    def _describe(self, v: Verified) -> bool:
        """The item's description: binlogs from their authenticated header and scan,
        backups from their record. False when the catalog holds another file here."""
        if v.kind in ("binlog", "quarantine") and v.binlog is not None:
            h, info = v.header, v.binlog
            entry = BinlogEntry(
                object_key=v.key,
                binlog_name=info.name,
                plaintext_sha256=v.plaintext_sha256,
                plaintext_size=v.plaintext_size,
                first_ts=info.first_timestamp,
                last_ts=info.last_timestamp,
                gtid_previous=str(h.get("gtid_previous") or info.gtid_previous or ""),
                gtid_set=str(h.get("gtid_executed_end") or info.gtid_executed_end or ""),
                file_status=str(h.get("file_status") or info.status),
                server_uuid=str(h.get("server_uuid") or ""),
                trace_id=str(h.get("trace_id") or ""),
            )
            return self.catalog.put_binlog(entry) != Outcome.CONFLICT
        if v.kind == "backup-record" and v.record is not None:
            self.catalog.put_backup(v.key, v.record)
        return True

    def _copy(self, store: Store, v: Verified) -> CopyState:
        return CopyState(
            cloud=store.cloud,
            bucket=store.bucket,
            key=v.key,
            state=VERIFIED,
            at=self.clock(),
            by=self.by,
            version=v.stat.version,
            checksum=v.checksum,
        )

    def _failed(self, res: Result, key: str, why: str, started: float) -> Result:
        log.error(
            "INTEGRITY FAILED: %s/%s: %s; recorded, not replicated",
            self.source.bucket,
            key,
            why,
            extra={"tenant": res.tenant, "server": res.server, "key": key},
        )
        copy = CopyState(
            cloud=self.source.cloud,
            bucket=self.source.bucket,
            key=key,
            state=INTEGRITY_FAILED,
            at=self.clock(),
            by=self.by,
            detail=why,
        )
        self.catalog.record_copy(key, copy)
        res.status = "integrity_failed"
        res.detail = why
        res.counts["integrity_failed"] = 1
        return self._timed(res, started)

    def _timed(self, res: Result, started: float) -> Result:
        res.counts["seconds"] = time.monotonic() - started
        return res
