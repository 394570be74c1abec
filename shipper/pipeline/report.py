"""What a shipping pass tells the outside: metrics, structured events and alerts.

The pipeline says what happened (a binlog committed, failed, flagged, a gap, a
circuit changed, a pass ended) in one call each; this module turns that into
the ``binlog_sync_*`` metrics, the JSON event and the alert checks, so
``ship.py`` stays about moving binlogs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from shipper import events
from shipper.binlog import BinlogInfo
from shipper.config import Config
from shipper.errors import ShipperError
from shipper.manifest import Manifest
from shipper.telemetry import Metrics

if TYPE_CHECKING:
    from shipper.alerts import Alerter

log = logging.getLogger(__name__)


class Reporter:
    def __init__(
        self,
        cfg: Config,
        metrics: Metrics,
        manifest: Manifest,
        targets: Iterable[str],
        state_dir: Path,
    ) -> None:
        self.tenant = cfg.tenant
        self.metrics = metrics
        # every target's series from the start (0 uploads, circuit closed), and the RPO
        # from what an earlier process committed
        for url in targets:
            metrics.target_known(url)
        last = [r.last_ts for r in manifest.all() if r.state == "committed"]
        metrics.committed(max((t for t in last if t is not None), default=None), None)
        metrics.on_circuit_change(self._circuit_event)
        self.alerts: Alerter | None = None
        if cfg.alerts is not None:
            from shipper.alerts import Alerter

            self.alerts = Alerter(cfg.alerts, cfg.tenant, metrics, state_dir / "alerts.json")
            metrics.on_circuit_change(self.alerts.circuit)

    def close(self) -> None:
        if self.alerts is not None:
            self.alerts.close()

    def pass_done(self, queue_depth: int) -> None:
        self.metrics.set_queue_depth(queue_depth)
        if self.alerts is not None:
            self.alerts.evaluate(self.metrics)

    def binlog_failed(self, name: str, e: ShipperError, attempts: int, trace_id: str) -> None:
        self.metrics.failures.labels(stage="ship").inc()
        self.metrics.failure(e.code)
        events.emit(
            "binlog_failed",
            str(e),
            tenant=self.tenant,
            level=logging.ERROR,
            error=e,
            binlog=name,
            retry_count=attempts,
            trace_id=trace_id,
        )

    def committed(
        self,
        name: str,
        info: BinlogInfo,
        outcome: str,
        keys: Iterable[str],
        attempts: int,
        trace_id: str,
        rotated_at: float | None,
    ) -> None:
        self.metrics.committed(info.last_timestamp, rotated_at)
        events.emit(
            "committed",
            f"binlog {name} {outcome}: " + ", ".join(keys),
            tenant=self.tenant,
            binlog=name,
            retry_count=attempts,
            trace_id=trace_id,
            outcome=outcome,
        )

    def gap(self, name: str, why: str) -> None:
        events.emit(
            "gap",
            f"binlog {name} was {why}; point-in-time restore cannot cross it",
            tenant=self.tenant,
            level=logging.ERROR,
            code="gap",
            binlog=name,
        )

    def flagged(self, name: str, info: BinlogInfo, key: str) -> None:
        events.emit(
            "flagged",
            f"binlog {name}: {info.damage}; quarantined at {key}",
            tenant=self.tenant,
            level=logging.ERROR,
            code=info.status,  # crc_mismatch or checksum_flag_mismatch
            binlog=name,
            key=key,
        )

    def _circuit_event(self, target: str, state: str, error: str) -> None:
        events.emit(
            "circuit_" + state.replace("-", "_"),
            f"circuit of target {target} is {state}" + (f": {error}" if error else ""),
            tenant=self.tenant,
            level=logging.ERROR if state == "open" else logging.WARNING,
            code="circuit_open" if state == "open" else None,
            target=target,
        )
