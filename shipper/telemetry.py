"""Prometheus metrics and trace ids for the host shipper.

Metrics live in their own registry (not the process-global one) so several
shippers in one process, as in tests, do not collide. ``run`` serves them on
``metrics_address`` and writes them to ``metrics_textfile`` (for node_exporter's
textfile collector) when those are set. What each metric means, and an alert
rule for it, is in docs/operations.md.

The ``binlog_sync_*`` / ``binlog_*`` names are the ones dashboards and alarms are
built on (infra/terraform); the older ``binlog_shipper_*`` ones are kept as they
were, because their meaning differs (unlabelled, per process).
"""

from __future__ import annotations

import math
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)

from shipper.errors import ConfigError, StateError

#: binlog_circuit_state values
CIRCUIT_STATES = {"closed": 0, "half-open": 1, "open": 2}

#: first line of every textfile we write; a file at the path without it is not ours
TEXTFILE_MARK = "# binlog-shipper metrics textfile (rewritten after every pass; do not edit)\n"

#: called as (target, state, error) when a target's circuit changes state
CircuitListener = Callable[[str, str, str], None]


class Metrics:
    def __init__(self, tenant: str = "default") -> None:
        self.tenant = tenant
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
        self.alerts_dropped = Counter(
            "binlog_shipper_alerts_dropped_total",
            "Alert events not delivered: the delivery queue was full, or every retry failed",
            ["reason"],
            registry=r,
        )
        self._sync_metrics(r)
        self._listeners: list[CircuitListener] = []
        self._lock = threading.Lock()

    def _sync_metrics(self, r: CollectorRegistry) -> None:
        t = {"tenant": self.tenant}
        self.discovered = Counter(
            "binlog_sync_discovered_total",
            "Closed binlogs the shipper found on the server (each once)",
            ["tenant"],
            registry=r,
        ).labels(**t)
        self.uploaded = Counter(
            "binlog_sync_uploaded_total",
            "Binlog objects written to a target and verified there",
            ["tenant", "target"],
            registry=r,
        )
        self.failed = Counter(
            "binlog_sync_failed_total",
            "Failures to ship a binlog or to use a target, by error code",
            ["tenant", "target", "error_code"],
            registry=r,
        )
        self.latency = Histogram(
            "binlog_sync_latency_seconds",
            "From the binlog's rotation (its file's last write) to its commit",
            ["tenant"],
            registry=r,
            buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
        ).labels(**t)
        self.queue_depth = Gauge(
            "binlog_queue_depth",
            "Closed binlogs not yet committed",
            ["tenant"],
            registry=r,
        ).labels(**t)
        self.circuit_state = Gauge(
            "binlog_circuit_state",
            "A target's circuit breaker: 0 closed, 1 half-open, 2 open",
            ["tenant", "target"],
            registry=r,
        )
        # Both are computed at scrape time from a stored instant, so they keep moving
        # between passes: a stalled shipper shows a growing lag, not a frozen one.
        self.queue_depth_value = 0
        self._newest_committed_event: float | None = None
        self._expiry_deadline: float | None = None
        lag = Gauge(
            "binlog_archive_lag_seconds",
            "Now minus the last event time of the newest committed binlog (the live RPO)",
            ["tenant"],
            registry=r,
        )
        lag.labels(**t).set_function(self.archive_lag)
        expiry = Gauge(
            "binlog_oldest_unarchived_expiry_seconds",
            "Seconds before the server may purge a binlog not yet archived (+Inf: none at risk)",
            ["tenant"],
            registry=r,
        )
        expiry.labels(**t).set_function(self.expiry_left)

    # -- what the pipeline reports --
    def target_known(self, target: str) -> None:
        """Make a target's series exist from the start (0 uploads, circuit closed)."""
        self.uploaded.labels(tenant=self.tenant, target=target).inc(0)
        self.circuit_state.labels(tenant=self.tenant, target=target).set(0)

    def upload(self, target: str) -> None:
        self.uploaded.labels(tenant=self.tenant, target=target).inc()

    def set_queue_depth(self, depth: int) -> None:
        self.queue_depth_value = depth
        self.queue_depth.set(depth)
        self.pending.set(depth)

    def failure(self, error_code: str, target: str = "") -> None:
        """One failure; ``target`` is empty when it is a binlog's, not a target's."""
        self.failed.labels(tenant=self.tenant, target=target, error_code=error_code).inc()

    def committed(self, last_event_time: float | None, rotated_at: float | None) -> None:
        now = time.time()
        if last_event_time is not None:
            with self._lock:
                newest = self._newest_committed_event
                if newest is None or last_event_time > newest:
                    self._newest_committed_event = last_event_time
        if rotated_at is not None:
            self.latency.observe(max(0.0, now - rotated_at))

    def set_expiry_deadline(self, deadline: float | None) -> None:
        """When the server may purge the oldest unarchived binlog (None: nothing at risk)."""
        with self._lock:
            self._expiry_deadline = deadline

    def archive_lag(self) -> float:
        """Seconds since the last event of the newest committed binlog; NaN before any."""
        with self._lock:
            newest = self._newest_committed_event
        return math.nan if newest is None else max(0.0, time.time() - newest)

    def expiry_left(self) -> float:
        with self._lock:
            deadline = self._expiry_deadline
        return math.inf if deadline is None else max(0.0, deadline - time.time())

    # -- circuit breaker hook --
    def on_circuit_change(self, listener: CircuitListener) -> None:
        self._listeners.append(listener)

    def circuit_changed(self, target: str, state: str, error: str = "") -> None:
        """The hook a circuit breaker calls on every change of state ("closed",
        "half-open", "open"): sets ``binlog_circuit_state`` and tells the listeners
        (structured events, alerts)."""
        if state not in CIRCUIT_STATES:
            raise ValueError(f"unknown circuit state {state!r}")
        self.circuit_state.labels(tenant=self.tenant, target=target).set(CIRCUIT_STATES[state])
        for listener in list(self._listeners):
            listener(target, state, error)

    # -- exposition --
    def serve(self, address: str) -> None:
        host, port = parse_address(address)
        try:
            start_http_server(port, addr=host, registry=self.registry)
        except OSError as e:
            raise ConfigError(
                f"metrics_address {address!r}: cannot listen on {host}:{port}: {e.strerror}"
            ) from e

    def write_textfile(self, path: Path) -> None:
        """Write the metrics for node_exporter's textfile collector: temp file + rename
        in the same directory, so the collector never reads half a file. A file already
        at ``path`` that we did not write (no mark line, or not a regular file) is left
        alone and reported."""
        try:
            st = path.lstat()
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StateError(f"metrics_textfile {path}: {e.strerror}") from e
        else:
            if not _is_ours(path, st.st_mode):
                raise StateError(
                    f"metrics_textfile {path} exists and was not written by binlog-shipper; "
                    "not replacing it (choose another path or move that file away)"
                )
        body = TEXTFILE_MARK.encode() + generate_latest(self.registry)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(body)
            os.rename(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise StateError(f"metrics_textfile {path} cannot be written: {e.strerror}") from e


def _is_ours(path: Path, mode: int) -> bool:
    if not stat.S_ISREG(mode):
        return False
    try:
        with path.open("rb") as f:
            return f.read(len(TEXTFILE_MARK)) == TEXTFILE_MARK.encode()
    except OSError:
        return False


def parse_address(address: str) -> tuple[str, int]:
    """``host:port``, ``:port`` or ``port`` (host 127.0.0.1); ``[v6]:port`` for IPv6."""
    host, sep, port = address.rpartition(":")
    if not sep:
        host, port = "", address
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 < number < 65536:
        raise ConfigError(f"metrics_address must be host:port (port 1-65535), got {address!r}")
    return host, number


def new_trace_id() -> str:
    """A W3C trace id (32 hex digits), carried in object metadata and logs."""
    return os.urandom(16).hex()
