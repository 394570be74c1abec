"""Reading the tables of the config file: strict typed reads and one reader per table.

:class:`Section` wraps one TOML table: it refuses unknown keys up front and reads
each value with its type, a finite number in its range, no NUL in a string, every
error naming the full key (``mysql.port``, ``targets[1].part_size``).
``[[targets]]`` and ``[[keys]]`` take per-scheme and per-provider options
(``TARGET_OPTIONS``, ``KEY_OPTIONS``). The ``read_*`` functions turn one table each
into its value type (``config_types.py``).

``config.py``'s ``parse`` reads the top-level keys and the routing rule (which
spans the targets) and calls these in the file's order; they are apart from it so
that the whole file reads as that list, and each table's checks sit together.
"""

from __future__ import annotations

import math
from typing import Any

from shipper.config_types import (
    PAGERDUTY_EVENTS_URL,
    AlertConfig,
    CatalogConfig,
    MySQLConfig,
    TargetConfig,
    cloud_of,
)
from shipper.errors import ConfigError
from shipper.resilience import ResilienceConfig


class Section:
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


def read_mysql(raw: Any) -> MySQLConfig:
    m = Section(
        raw,
        "mysql.",
        {"host", "port", "user", "password_file", "socket", "binlog_dir", "connect_timeout"},
    )
    port = m.number("port", 3306, 1, 65535, integer=True)
    return MySQLConfig(
        host=m.get("host", str, "127.0.0.1"),
        port=port,
        user=m.get("user", str, "root"),
        password_file=m.get("password_file", str, ""),
        socket=m.get("socket", str, ""),
        binlog_dir=m.get("binlog_dir", str, ""),
        connect_timeout=m.number("connect_timeout", 10, 1, 3600, integer=True, unit="seconds"),
    )


def read_targets(raw_targets: Any) -> list[TargetConfig]:
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
        cloud = cloud_of(url)
        options = {k: v for k, v in t.items() if k != "url"}
        _check_options(f"targets[{i}]", f"a {scheme}:// target", options, TARGET_OPTIONS[scheme])
        targets.append(TargetConfig(url=url, cloud=cloud, options=options))
    return targets


def read_keys(raw_keys: Any) -> list[dict[str, Any]]:
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
    return keys


def read_catalog(raw: Any) -> CatalogConfig:
    c = Section(raw, "catalog.", {"url", "region", "endpoint_url"})
    url = c.get("url", str, "")
    if not url.startswith("dynamodb://") or len(url) <= len("dynamodb://"):
        raise ConfigError(f'catalog.url must be "dynamodb://TABLE", got {url!r}')
    return CatalogConfig(
        url=url,
        region=c.get("region", str, None),
        endpoint_url=c.get("endpoint_url", str, None),
    )


def read_alerts(raw: Any) -> AlertConfig | None:
    if raw is None:
        return None
    a = Section(
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


def read_resilience(raw: Any) -> ResilienceConfig:
    d = ResilienceConfig()
    r = Section(raw, "resilience.", set(d.__dataclass_fields__))
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
