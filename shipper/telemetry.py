"""Prometheus metrics and trace ids for the host shipper.

Metrics live in their own registry (not the process-global one) so several
shippers in one process, as in tests, do not collide. ``run`` serves them on
``metrics_port`` when it is set.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.shipped = Counter(
            "binlog_shipper_binlogs_shipped_total", "Binlogs archived and committed", registry=r
        )
        self.bytes = Counter(
            "binlog_shipper_plaintext_bytes_shipped_total",
            "Plaintext binlog bytes archived",
            registry=r,
        )
        self.flagged = Counter(
            "binlog_shipper_binlogs_flagged_total",
            "Binlogs quarantined (event checksum mismatch)",
            registry=r,
        )
        self.gaps = Counter(
            "binlog_shipper_gaps_total",
            "Binlogs purged by the server before they were shipped",
            registry=r,
        )
        self.lineage = Counter(
            "binlog_shipper_lineage_conflicts_total",
            "Different files found at a binlog's key",
            registry=r,
        )
        self.failures = Counter(
            "binlog_shipper_failures_total", "Failed shipping attempts", ["stage"], registry=r
        )
        self.storage_errors = Counter(
            "binlog_shipper_storage_errors_total",
            "Failed storage calls (each attempt, retried or not), by error code",
            ["target", "operation", "error_code", "transient"],
            registry=r,
        )
        self.circuit_open = Gauge(
            "binlog_shipper_circuit_open",
            "1 while the target's circuit breaker is open",
            ["target"],
            registry=r,
        )
        self.purge_risk = Gauge(
            "binlog_shipper_binlogs_near_purge",
            "Unarchived binlogs close to the server's expiry",
            registry=r,
        )
        self.pending = Gauge(
            "binlog_shipper_binlogs_pending", "Closed binlogs not yet committed", registry=r
        )
        self.last_commit = Gauge(
            "binlog_shipper_last_commit_timestamp_seconds",
            "When the last binlog was committed",
            registry=r,
        )
        self.duration = Histogram(
            "binlog_shipper_ship_seconds",
            "Time to ship one binlog",
            registry=r,
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300),
        )

    def serve(self, port: int) -> None:
        start_http_server(port, registry=self.registry)


def new_trace_id() -> str:
    """A W3C trace id (32 hex digits), carried in object metadata and logs."""
    return os.urandom(16).hex()
