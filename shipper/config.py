"""Configuration: one TOML file, validated with errors that name the bad key.

Example (what ``binlog-shipper init`` writes for the embedded default)::

    tenant = "default"
    state_dir = "/var/lib/binlog-shipper"
    compression_level = 3

    [mysql]
    socket = "/run/mysqld/mysqld.sock"     # or host + port
    user = "root"
    password_file = ""                      # a file holding the password, mode 0600
    binlog_dir = ""                         # default: dirname(@@log_bin_basename)

    [routing]
    primary = "local"                       # "aws", "gcp" or "local"
    direct_dual = false                     # write every target from the host

    [[targets]]
    url = "file:///var/lib/binlog-shipper/archive"

    [[keys]]
    provider = "local"
    path = "/var/lib/binlog-shipper/keyring"
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipper.errors import ConfigError
from shipper.resilience import ResilienceConfig

DEFAULT_CONFIG_PATH = Path("/etc/binlog-shipper/config.toml")
CLOUDS = ("aws", "gcp", "local")
VERIFY_MODES = ("auto", "full", "prefix")


def default_workers() -> int:
    """Binlogs shipped at once unless ``workers`` is set: one per CPU this process may
    run on, at most 4 (sealing is CPU work; past 4 the network, not the CPUs, is the
    limit, and the memory budget holds them back anyway)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


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


def _cloud_of(url: str) -> str:
    if url.startswith("s3://"):
        return "aws"
    if url.startswith("gs://"):
        return "gcp"
    return "local"


class _Section:
    """Typed reads from a TOML table; every error names the full key."""

    def __init__(self, data: dict[str, Any], prefix: str, known: set[str]) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{prefix.rstrip('.') or 'config'} must be a table")
        self.data = data
        self.prefix = prefix
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"unknown key {prefix}{unknown[0]} (known here: {', '.join(sorted(known))})"
            )

    def get(self, key: str, typ: type | tuple[type, ...], default: Any) -> Any:
        if key not in self.data:
            return default
        value = self.data[key]
        types = typ if isinstance(typ, tuple) else (typ,)
        if isinstance(value, bool) and bool not in types:
            value = None  # bool is an int in Python; refuse it for numeric keys
        if value is None or not isinstance(value, types):
            names = " or ".join(t.__name__ for t in types)
            raise ConfigError(f"{self.prefix}{key} must be {names}, got {self.data[key]!r}")
        if isinstance(value, str) and "\x00" in value:  # no path or name can hold one
            raise ConfigError(f"{self.prefix}{key} must not contain a NUL character")
        return value

    def number(
        self,
        key: str,
        default: float,
        lo: float,
        hi: float,
        *,
        integer: bool = False,
        lo_open: bool = False,
        unit: str = "",
    ) -> Any:
        """A finite number in [lo, hi] (or (lo, hi] with ``lo_open``); TOML's nan and inf
        are floats, and a nan compares false to every bound, so it is refused by name."""
        value = self.get(key, int if integer else (int, float), default)
        full, suffix = f"{self.prefix}{key}", f" {unit}" if unit else ""
        if not math.isfinite(value):
            raise ConfigError(f"{full} must be a finite number, got {value}")
        low_ok = value > lo if lo_open else value >= lo
        if not (low_ok and value <= hi):
            lo_text = f"greater than {lo:g}" if lo_open else f"at least {lo:g}"
            raise ConfigError(f"{full} must be {lo_text} and at most {hi:g}{suffix}, got {value}")
        return value


#: ``[[targets]]`` options each scheme accepts, with the type each must have. They are
#: what the backends' ``from_url`` takes (shipper/storage/s3.py, gcs.py); file:// takes none.
_POSITIVE_INT = "positive integer"
_SECONDS = "finite number of seconds >= 0"
_URL = "http:// or https:// URL"
TARGET_OPTIONS: dict[str, dict[str, str]] = {
    "file": {},
    "memory": {},
    "s3": {
        "region": "string",
        "endpoint_url": "string",
        "multipart_threshold": _POSITIVE_INT,
        "part_size": _POSITIVE_INT,
        "max_concurrency": _POSITIVE_INT,
        "sse_kms_key_id": "string",
        "object_lock_mode": "string",
        "object_lock_days": _POSITIVE_INT,
        "connect_timeout": _SECONDS,
        "read_timeout": _SECONDS,
        "sdk_max_attempts": _POSITIVE_INT,
    },
    "gs": {
        "project": "string",
        "endpoint_url": _URL,
        "credentials_file": "string",
        "chunk_size": _POSITIVE_INT,
        "resumable_threshold": _POSITIVE_INT,
        "sdk_retry_seconds": _SECONDS,
        "timeout": _SECONDS,
    },
}

#: ``[[keys]]`` entries: what each provider reads (shipper/keys/*.py ``from_config``);
#: the first one listed is required.
KEY_OPTIONS: dict[str, tuple[str, ...]] = {
    "local": ("path",),
    "aws-kms": ("key_id", "region", "endpoint_url"),
    "gcp-kms": ("key_name",),
}

#: the tenant is the first segment of every object key and a directory name on file://
TENANT_RULE = (
    "1 to 63 ASCII letters, digits, '-', '_' or '.', starting with a letter or digit "
    "(so never '.' or '..', and no '/')"
)
_TENANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def _check_options(where: str, what: str, options: dict[str, Any], known: dict[str, str]) -> None:
    unknown = sorted(set(options) - set(known))
    if unknown:
        accepted = ", ".join(sorted(known)) if known else "none besides the url"
        raise ConfigError(f"unknown key {where}.{unknown[0]} for {what} (accepted: {accepted})")
    for name, kind in known.items():
        if name not in options:
            continue
        v = options[name]
        if kind == "string" and not (isinstance(v, str) and v and "\x00" not in v):
            raise ConfigError(f"{where}.{name} must be a non-empty string, got {v!r}")
        if kind == _URL and not (
            isinstance(v, str) and v.startswith(("http://", "https://")) and "\x00" not in v
        ):
            raise ConfigError(f"{where}.{name} must be an {kind}, got {v!r}")
        if kind == _POSITIVE_INT and (isinstance(v, bool) or not isinstance(v, int) or v <= 0):
            raise ConfigError(f"{where}.{name} must be a positive integer, got {v!r}")
        if kind == _SECONDS and (
            isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0
        ):
            raise ConfigError(f"{where}.{name} must be a {kind}, got {v!r}")


def load(path: str | os.PathLike[str]) -> Config:
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(
            f"config file {p} not found (create one with: binlog-shipper init)"
        ) from None
    except OSError as e:
        raise ConfigError(f"config file {p}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {p} is not valid TOML: {e}") from e
    try:
        return parse(raw, p)
    except ConfigError as e:
        raise ConfigError(f"config file {p}: {e}") from e


def parse(raw: dict[str, Any], path: Path) -> Config:
    top = _Section(
        raw,
        "",
        {
            "tenant",
            "state_dir",
            "compression_level",
            "chunk_size",
            "mysql",
            "routing",
            "targets",
            "keys",
            "verify",
            "poll_interval",
            "purge_warning_seconds",
            "metrics_port",
            "metrics_address",
            "metrics_textfile",
            "events_file",
            "alerts",
            "resilience",
            "catalog",
            "workers",
            "memory_budget_mb",
        },
    )
    tenant = top.get("tenant", str, "default")
    if not _TENANT_RE.fullmatch(tenant):
        raise ConfigError(f"tenant must be {TENANT_RULE}; got {tenant!r}")
    state_dir = top.get("state_dir", str, "")
    if not state_dir:
        raise ConfigError("state_dir is required")
    level = top.number("compression_level", 3, 1, 22, integer=True)
    chunk_size = top.number("chunk_size", 1 << 20, 1 << 12, 1 << 26, integer=True, unit="bytes")
    verify = top.get("verify", str, "auto")
    if verify not in VERIFY_MODES:
        raise ConfigError(f"verify must be one of {', '.join(VERIFY_MODES)}, got {verify!r}")
    # below 0.1 s the watcher would spin on SHOW BINARY LOGS; above a day it is not watching
    poll = float(top.number("poll_interval", 10.0, 0.1, 86400, unit="seconds"))
    purge_warning = top.number(
        "purge_warning_seconds", 3600, 0, 366 * 86400, integer=True, unit="seconds"
    )
    metrics_port = top.number("metrics_port", 0, 0, 65535, integer=True)
    metrics_address = top.get("metrics_address", str, "")
    if metrics_port and metrics_address:
        raise ConfigError("set metrics_address or metrics_port (deprecated), not both")
    if metrics_port:
        metrics_address = f"127.0.0.1:{metrics_port}"
    if metrics_address:
        from shipper.telemetry import parse_address

        parse_address(metrics_address)  # refuse a bad value at load, not at first serve

    workers = top.number("workers", default_workers(), 1, 64, integer=True)
    budget_mb = top.number("memory_budget_mb", 192, 16, 1 << 20, integer=True, unit="MiB")

    m = _Section(
        raw.get("mysql", {}),
        "mysql.",
        {"host", "port", "user", "password_file", "socket", "binlog_dir", "connect_timeout"},
    )
    port = m.number("port", 3306, 1, 65535, integer=True)
    mysql = MySQLConfig(
        host=m.get("host", str, "127.0.0.1"),
        port=port,
        user=m.get("user", str, "root"),
        password_file=m.get("password_file", str, ""),
        socket=m.get("socket", str, ""),
        binlog_dir=m.get("binlog_dir", str, ""),
        connect_timeout=m.number("connect_timeout", 10, 1, 3600, integer=True, unit="seconds"),
    )

    r = _Section(raw.get("routing", {}), "routing.", {"primary", "direct_dual"})
    primary = r.get("primary", str, "")
    direct_dual = r.get("direct_dual", bool, False)

    raw_targets = raw.get("targets", [])
    if not isinstance(raw_targets, list) or not raw_targets:
        raise ConfigError("targets must list at least one [[targets]] entry with a url")
    targets = []
    for i, t in enumerate(raw_targets):
        if not isinstance(t, dict):
            raise ConfigError(f"targets[{i}] must be a table")
        url = t.get("url")
        if not isinstance(url, str) or "://" not in url or "\x00" in url:
            raise ConfigError(
                f"targets[{i}].url must be a URL like file:///path, s3://bucket/prefix"
                f" or gs://bucket/prefix, got {url!r}"
            )
        scheme = url.split("://", 1)[0]
        if scheme not in ("file", "s3", "gs", "memory"):
            raise ConfigError(
                f"targets[{i}].url: unknown scheme {scheme!r} (use file://, s3:// or gs://)"
            )
        cloud = _cloud_of(url)
        options = {k: v for k, v in t.items() if k != "url"}
        _check_options(f"targets[{i}]", f"a {scheme}:// target", options, TARGET_OPTIONS[scheme])
        targets.append(TargetConfig(url=url, cloud=cloud, options=options))
    if not primary:
        primary = targets[0].cloud
    if primary not in CLOUDS:
        raise ConfigError(f"routing.primary must be one of {', '.join(CLOUDS)}, got {primary!r}")
    if not any(t.cloud == primary for t in targets):
        raise ConfigError(f"routing.primary = {primary!r} but no target is in that cloud")

    raw_keys = raw.get("keys", [])
    if not isinstance(raw_keys, list) or not raw_keys:
        raise ConfigError('keys must list at least one [[keys]] entry (provider = "local", ...)')
    keys = []
    for i, k in enumerate(raw_keys):
        if not isinstance(k, dict) or not isinstance(k.get("provider"), str):
            raise ConfigError(f'keys[{i}].provider must be "local", "aws-kms" or "gcp-kms"')
        if k["provider"] not in ("local", "aws-kms", "gcp-kms"):
            raise ConfigError(
                f'keys[{i}].provider must be "local", "aws-kms" or "gcp-kms", got {k["provider"]!r}'
            )
        provider = k["provider"]
        known = KEY_OPTIONS[provider]
        options = {name: v for name, v in k.items() if name != "provider"}
        _check_options(
            f"keys[{i}]", f"provider {provider!r}", options, dict.fromkeys(known, "string")
        )
        if known[0] not in options:
            raise ConfigError(f"keys[{i}].{known[0]} is required for provider {provider!r}")
        keys.append(dict(k))

    catalog = None
    if "catalog" in raw:
        c = _Section(raw["catalog"], "catalog.", {"url", "region", "endpoint_url"})
        url = c.get("url", str, "")
        if not url.startswith("dynamodb://") or len(url) <= len("dynamodb://"):
            raise ConfigError(f'catalog.url must be "dynamodb://TABLE", got {url!r}')
        catalog = CatalogConfig(
            url=url,
            region=c.get("region", str, None),
            endpoint_url=c.get("endpoint_url", str, None),
        )

    return Config(
        resilience=_resilience(raw.get("resilience", {})),
        path=path,
        tenant=tenant,
        state_dir=Path(state_dir),
        mysql=mysql,
        targets=tuple(targets),
        keys=tuple(keys),
        compression_level=level,
        chunk_size=chunk_size,
        primary=primary,
        direct_dual=direct_dual,
        verify=verify,
        poll_interval=poll,
        purge_warning_seconds=purge_warning,
        metrics_port=metrics_port,
        metrics_address=metrics_address,
        metrics_textfile=top.get("metrics_textfile", str, ""),
        events_file=top.get("events_file", str, ""),
        alerts=_alerts(raw.get("alerts")),
        catalog=catalog,
        workers=workers,
        memory_budget=budget_mb << 20,
    )


def _alerts(raw: Any) -> AlertConfig | None:
    if raw is None:
        return None
    a = _Section(
        raw,
        "alerts.",
        {
            "url",
            "routing_key_file",
            "queue_depth",
            "archive_lag_seconds",
            "expiry_seconds",
            "circuit_open",
            "attempts",
            "timeout",
        },
    )
    url = a.get("url", str, PAGERDUTY_EVENTS_URL)
    if not url.startswith(("https://", "http://")):
        raise ConfigError(f"alerts.url must be an http(s) URL, got {url!r}")
    key_file = a.get("routing_key_file", str, "")
    if not key_file:
        raise ConfigError("alerts.routing_key_file is required (a file holding the routing key)")
    day = 86400
    queue_depth = a.number("queue_depth", 0, 0, 1_000_000, integer=True)
    lag = a.number("archive_lag_seconds", 0, 0, 366 * day, unit="seconds")
    expiry = a.number("expiry_seconds", 0, 0, 366 * day, unit="seconds")
    attempts = a.number("attempts", 5, 1, 100, integer=True)
    timeout = a.number("timeout", 10.0, 0, 600, lo_open=True, unit="seconds")
    return AlertConfig(
        routing_key_file=key_file,
        url=url,
        queue_depth=queue_depth,
        archive_lag_seconds=float(lag),
        expiry_seconds=float(expiry),
        circuit_open=a.get("circuit_open", bool, True),
        attempts=attempts,
        timeout=float(timeout),
    )


def _resilience(raw: Any) -> ResilienceConfig:
    d = ResilienceConfig()
    r = _Section(raw, "resilience.", set(d.__dataclass_fields__))
    out = ResilienceConfig(
        retry_attempts=r.get("retry_attempts", int, d.retry_attempts),
        retry_base=float(r.get("retry_base", (int, float), d.retry_base)),
        retry_max_wait=float(r.get("retry_max_wait", (int, float), d.retry_max_wait)),
        breaker_threshold=r.get("breaker_threshold", int, d.breaker_threshold),
        breaker_cooldown=float(r.get("breaker_cooldown", (int, float), d.breaker_cooldown)),
        failover=r.get("failover", bool, d.failover),
    )
    for name in ("retry_attempts", "breaker_threshold"):
        if getattr(out, name) < 1:
            raise ConfigError(f"resilience.{name} must be >= 1, got {getattr(out, name)}")
    for name in ("retry_base", "retry_max_wait", "breaker_cooldown"):
        if getattr(out, name) < 0:
            raise ConfigError(f"resilience.{name} must be >= 0, got {getattr(out, name)}")
    return out


def render_default(
    state_dir: Path, *, tenant: str, mysql: MySQLConfig, archive_url: str, keyring: Path
) -> str:
    """The TOML ``init`` writes. Kept as text so comments survive for the operator."""

    def q(s: str) -> str:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return f"""# binlog-shipper configuration (written by `binlog-shipper init`)
tenant = {q(tenant)}
state_dir = {q(str(state_dir))}
compression_level = 3      # zstd level; 19 compresses ~1 MB/s: slower than a busy server writes
verify = "auto"            # full read-back on file://; header + first chunk on s3/gs

[mysql]
host = {q(mysql.host)}
port = {mysql.port}
user = {q(mysql.user)}
password_file = {q(mysql.password_file)}
socket = {q(mysql.socket)}
binlog_dir = {q(mysql.binlog_dir)}   # empty: read @@log_bin_basename from the server

[routing]
primary = {q(_cloud_of(archive_url))}   # the cloud of the target the host writes
direct_dual = false

[[targets]]
url = {q(archive_url)}

[[keys]]
provider = "local"
path = {q(str(keyring))}
"""
