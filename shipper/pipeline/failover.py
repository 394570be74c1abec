"""Resilient targets: a circuit breaker per target, and failover to the other cloud.

Every target the shipper opens is ``breaker(retry(backend))``
(``storage/factory.py``), with the tenant's ``[resilience]`` policy. The
breakers' states live in the manifest (schema v3), so a restart does not forget
an open circuit; every change of state is journalled (``circuit``) and logged.

Failover (``resilience.failover = true``): while a write target's circuit is
open, a binlog it holds back is written to the fallback targets instead (the
other cloud's target, routing role "replica", which the host does not write
otherwise), verified there like any upload, and committed: nothing is
committed that was not verified in at least one cloud. The target whose
circuit is open gets a ``pending`` placement ("needs replication back"), and
``pipeline/backfill.py`` drains that backlog to it once its circuit lets calls
through again. The secondary's replication function, where one is deployed,
copies the same objects back too, and either may come first: if the function
did, the host finds the object there, verifies it and records it, uploading
nothing; if the host did (a re-seal: another envelope of the same binlog), the
function finds it, verifies it in full and records it ``equivalent``
(``shipper/fleet/replicate.py``). Neither order is a lineage conflict.

A target that failed for another reason (access denied, a missing bucket)
does not fail over: its circuit stays closed, and the binlog waits, reported.
Nor does one whose circuit is still closed: a pass stops calling a target after
its first failure (``TargetWriter.failed``), and its circuit counts at most one
failure per pass (:meth:`Targets.begin_pass`), so ``breaker_threshold`` is
also the number of passes before failover, with any number of workers.
Commits stay in order: a binlog held back in a pass holds back every later one
in that pass (``binlog_job.hold``), even one a parallel worker failed over.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from shipper.errors import ConfigError
from shipper.pipeline import routing
from shipper.pipeline.targets import TARGET_ERRORS, TargetWriter
from shipper.pipeline.upload import SealedBinlog
from shipper.storage import StorageBackend, open_backend
from shipper.storage.breaker import CLOSED, OPEN, CircuitBreaker
from shipper.storage.factory import resilient
from shipper.telemetry import CIRCUIT_STATES

if TYPE_CHECKING:
    from shipper.config import Config, TargetConfig
    from shipper.manifest import Manifest
    from shipper.telemetry import Metrics

log = logging.getLogger(__name__)


def fallback_targets(cfg: Config) -> tuple[TargetConfig, ...]:
    """Where binlogs go while a write target's circuit is open: the replica-role targets
    (the other cloud), when ``resilience.failover`` is on."""
    if not cfg.resilience.failover:
        return ()
    out = tuple(r.target for r in routing.routes(cfg) if r.role == "replica")
    if not out and not cfg.direct_dual:
        raise ConfigError(
            "resilience.failover = true needs a target in the other cloud to fail over to "
            f"(routing.primary = {cfg.primary!r}; add an s3:// or gs:// [[targets]] entry "
            "of the other cloud, or set resilience.failover = false)"
        )
    return out


class Targets:
    """Opens the shipper's backends, each behind its own persisted circuit breaker."""

    def __init__(self, cfg: Config, manifest: Manifest, metrics: Metrics) -> None:
        self.cfg = cfg
        self.manifest = manifest
        self.metrics = metrics
        self.breakers: dict[str, CircuitBreaker] = {}

    def open(self, t: TargetConfig) -> StorageBackend:
        res = self.cfg.resilience
        breaker = CircuitBreaker(
            t.url,
            threshold=res.breaker_threshold,
            cooldown=res.breaker_cooldown,
            store=self.manifest,
            on_change=self._changed,
        )
        self.breakers[t.url] = breaker
        self.metrics.circuit_open.labels(target=t.url).set(1 if breaker.state == OPEN else 0)
        # a circuit persisted open by an earlier run shows at once (no event: it did not change)
        self.metrics.circuit_state.labels(tenant=self.cfg.tenant, target=t.url).set(
            CIRCUIT_STATES[breaker.state]
        )
        return open_backend(
            t.url, t.options, wrappers=resilient(res, breaker=breaker, on_error=self._error)
        )

    def begin_pass(self) -> None:
        """A pass begins: each circuit counts at most one failure per pass."""
        for b in self.breakers.values():
            b.begin_pass()

    def is_open(self, url: str) -> bool:
        """Whether ``url``'s circuit is not closed (open, or half-open and not yet probed)."""
        b = self.breakers.get(url)
        return b is not None and b.state != CLOSED

    def _error(self, url: str, op: str, code: str, transient: bool) -> None:
        self.metrics.storage_errors.labels(
            target=url, operation=op, error_code=code, transient=str(transient).lower()
        ).inc()

    def _changed(self, url: str, old: str, new: str, error: str) -> None:
        self.metrics.circuit_open.labels(target=url).set(1 if new == OPEN else 0)
        # binlog_circuit_state, the structured event and the circuit-open alert
        self.metrics.circuit_changed(url, new, error)
        self.manifest.journal(
            "circuit", None, {"target": url, "from": old, "to": new, "error": error}
        )
        if new == OPEN:
            log.error("CIRCUIT OPEN: target %s: %s", url, error)
        else:
            log.warning("circuit of target %s: %s -> %s", url, old, new)


def cover(
    out: TargetWriter,
    targets: Targets,
    name: str,
    held_back: list[str],
    final_keys: dict[str, str],
    key: str,
    b: SealedBinlog,
    index: bytes | None,
) -> dict[str, object] | None:
    """Whether ``name`` may commit although ``held_back`` targets lack it: every one of
    them has its circuit open, failover is on, and some target (a write target, or a
    fallback written here) holds a verified copy. Then the held-back targets get a
    ``pending`` placement, and the journal entry to write when ``name`` commits is
    returned (None: it may not commit). Adds fallback placements to ``final_keys``."""
    if not targets.cfg.resilience.failover or not all(targets.is_open(u) for u in held_back):
        return None
    if not final_keys:
        placed = out.manifest.placements(name)
        for url, backend in out.fallback:
            done = placed.get(url)
            if done is not None and done.state == "verified" and done.object_key:
                final_keys[url] = done.object_key  # failed over by an earlier attempt
                continue
            if url in out.down:
                continue
            try:
                k, _ = out.place(url, backend, key, b, index)
            except TARGET_ERRORS as e:
                out.failed(url, e, name)
                continue
            final_keys[url] = k
    if not final_keys:
        return None
    why = "needs replication back: committed on " + ", ".join(final_keys) + " (circuit open)"
    for url in held_back:
        out.manifest.place(name, url, key=None, error=why, pending=True)
    log.warning("binlog %s: failover: %s", name, why)
    return {"from": held_back, "to": sorted(final_keys), "key": key}
