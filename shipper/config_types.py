"""The configuration's value types: what ``shipper.config.load`` returns.

Frozen dataclasses, one per table of the file (``[mysql]``, ``[[targets]]``,
``[alerts]``, ``[catalog]``; ``[resilience]`` is :class:`shipper.resilience.ResilienceConfig`)
and :class:`Config` around them, with the little they do themselves: read the
password or routing-key file they name, say which targets the host writes.

They are apart from reading the file (``config.py``, ``config_sections.py``)
because most of the package only takes a ``Config``: the pipeline, the CLI and
the alerts import these types and never parse TOML.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipper.errors import ConfigError
from shipper.resilience import ResilienceConfig

CLOUDS = ("aws", "gcp", "local")
VERIFY_MODES = ("auto", "full", "prefix")


def default_workers() -> int:
    """Binlogs shipped at once unless ``workers`` is set: one per CPU this process may
    run on, at least 4 and at most 8. Sealing is CPU work, but each binlog also waits
    on the network for several round trips and, when a request fails, for a backoff:
    more workers than cores keep the cores busy meanwhile (bench/bench_faults.py: on 2
    cores, 20% of requests failing cost 55% of the throughput with 2 workers, 28% with
    4, and 4 were as fast as 2 with no faults). The memory budget bounds what they hold."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(4, min(8, cpus))


@dataclass(frozen=True)
class MySQLConfig:
    host: str = "127.0.0.1"
    port: int = 3306
    user: str = "root"
    password_file: str = ""
    socket: str = ""
    binlog_dir: str = ""
    connect_timeout: int = 10

    def password_bytes(self) -> bytes:
        """The password as the file holds it, byte for byte, less its trailing newline.

        Any byte but the line end is part of it: ``#``, quotes, backslashes, spaces. It is
        handed to the driver as bytes because PyMySQL encodes a str password as latin-1,
        while the server hashed the UTF-8 bytes ``CREATE USER ... IDENTIFIED BY`` sent.
        """
        if not self.password_file:
            return b""
        try:
            return Path(self.password_file).read_bytes().rstrip(b"\r\n")
        except OSError as e:
            raise ConfigError(
                f"mysql.password_file {self.password_file!r}: {e.strerror} (it must be "
                "readable by the user binlog-shipper runs as)"
            ) from e

    def password(self) -> str:
        """:meth:`password_bytes` as text, for tools that take an option file."""
        raw = self.password_bytes()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(
                f"mysql.password_file {self.password_file!r} is not UTF-8 text"
            ) from e


#: where PagerDuty's Events API v2 takes events
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


@dataclass(frozen=True)
class AlertConfig:
    """``[alerts]``: PagerDuty Events API v2 events when a threshold is crossed (0 = off)."""

    routing_key_file: str
    url: str = PAGERDUTY_EVENTS_URL
    #: closed binlogs not yet committed
    queue_depth: int = 0
    #: binlog_archive_lag_seconds (the live RPO)
    archive_lag_seconds: float = 0
    #: binlog_oldest_unarchived_expiry_seconds below this
    expiry_seconds: float = 0
    #: alert while a target's circuit is open
    circuit_open: bool = True
    #: attempts per event (retried with backoff, in the background)
    attempts: int = 5
    #: seconds per HTTP request
    timeout: float = 10.0

    def routing_key(self) -> str:
        try:
            key = Path(self.routing_key_file).read_text().strip()
        except OSError as e:
            raise ConfigError(
                f"alerts.routing_key_file {self.routing_key_file!r}: {e.strerror}"
            ) from e
        if not key:
            raise ConfigError(f"alerts.routing_key_file {self.routing_key_file!r} is empty")
        return key


@dataclass(frozen=True)
class TargetConfig:
    url: str
    #: which cloud this target lives in: "aws" (s3://), "gcp" (gs://) or "local".
    cloud: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CatalogConfig:
    """``[catalog]``: the fleet catalog the shipper also records its commits in."""

    url: str
    region: str | None = None
    endpoint_url: str | None = None

    @property
    def options(self) -> dict[str, Any]:
        return {
            k: v for k, v in (("region", self.region), ("endpoint_url", self.endpoint_url)) if v
        }


@dataclass(frozen=True)
class Config:
    path: Path
    tenant: str
    state_dir: Path
    mysql: MySQLConfig
    targets: tuple[TargetConfig, ...]
    keys: tuple[dict[str, Any], ...]
    compression_level: int = 3
    chunk_size: int = 1 << 20
    primary: str = "local"
    direct_dual: bool = False
    #: "full": download and decrypt everything; "prefix": ranged read of header + first
    #: chunk; "auto": prefix on s3:// and gs:// (the service checked our checksum), else full
    verify: str = "auto"
    poll_interval: float = 10.0
    purge_warning_seconds: int = 3600
    #: deprecated: metrics_address = "127.0.0.1:PORT" (folded into metrics_address)
    metrics_port: int = 0
    #: host:port for /metrics in watch mode ("" = off)
    metrics_address: str = ""
    #: node_exporter textfile, rewritten after every pass ("" = off)
    metrics_textfile: str = ""
    #: structured events as JSON lines appended here ("" = stderr)
    events_file: str = ""
    alerts: AlertConfig | None = None
    resilience: ResilienceConfig = field(default_factory=ResilienceConfig)
    catalog: CatalogConfig | None = None
    #: binlogs sealed, uploaded and verified at once (pipeline/parallel.py)
    workers: int = field(default_factory=lambda: default_workers())
    #: bytes those workers may hold in buffers at once (parallel.footprint per binlog);
    #: the process's RSS is about 100 MiB (interpreter, SDKs) more
    memory_budget: int = 192 << 20

    @property
    def tenant_prefix(self) -> str:
        return self.tenant

    def write_targets(self) -> tuple[TargetConfig, ...]:
        """Targets the host writes: the primary cloud's, or all of them with direct_dual."""
        from shipper.pipeline.routing import write_targets  # the rule and its reasons live there

        return write_targets(self)


def cloud_of(url: str) -> str:
    """The cloud a target URL lives in: "aws" (s3://), "gcp" (gs://), else "local"."""
    if url.startswith("s3://"):
        return "aws"
    if url.startswith("gs://"):
        return "gcp"
    return "local"
