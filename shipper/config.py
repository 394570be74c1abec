"""Configuration: one TOML file, validated with errors that name the bad key.

``load`` reads the file and ``parse`` checks it as a whole: the top-level keys,
the routing rule, then each table through its reader (``config_sections.py``),
into the value types the rest of the package takes (``config_types.py``, whose
names are importable from here). ``render_default`` writes what ``init`` puts
down.

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

import os
import re
import tomllib
from pathlib import Path
from typing import Any

from shipper.config_sections import (
    TARGET_OPTIONS,
    Section,
    read_alerts,
    read_catalog,
    read_keys,
    read_mysql,
    read_resilience,
    read_targets,
)
from shipper.config_types import (
    CLOUDS,
    VERIFY_MODES,
    AlertConfig,
    Config,
    MySQLConfig,
    TargetConfig,
    cloud_of,
    default_workers,
)
from shipper.errors import ConfigError

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "TARGET_OPTIONS",
    "AlertConfig",
    "Config",
    "MySQLConfig",
    "TargetConfig",
    "default_workers",
    "load",
    "parse",
    "render_default",
]

DEFAULT_CONFIG_PATH = Path("/etc/binlog-shipper/config.toml")

#: the tenant is the first segment of every object key and a directory name on file://
TENANT_RULE = (
    "1 to 63 ASCII letters, digits, '-', '_' or '.', starting with a letter or digit "
    "(so never '.' or '..', and no '/')"
)
_TENANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


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
    top = Section(
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

    mysql = read_mysql(raw.get("mysql", {}))

    r = Section(raw.get("routing", {}), "routing.", {"primary", "direct_dual"})
    primary = r.get("primary", str, "")
    direct_dual = r.get("direct_dual", bool, False)

    targets = read_targets(raw.get("targets", []))
    if not primary:
        primary = targets[0].cloud
    if primary not in CLOUDS:
        raise ConfigError(f"routing.primary must be one of {', '.join(CLOUDS)}, got {primary!r}")
    if not any(t.cloud == primary for t in targets):
        raise ConfigError(f"routing.primary = {primary!r} but no target is in that cloud")

    keys = read_keys(raw.get("keys", []))
    catalog = read_catalog(raw["catalog"]) if "catalog" in raw else None

    return Config(
        resilience=read_resilience(raw.get("resilience", {})),
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
        alerts=read_alerts(raw.get("alerts")),
        catalog=catalog,
        workers=workers,
        memory_budget=budget_mb << 20,
    )


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
primary = {q(cloud_of(archive_url))}   # the cloud of the target the host writes
direct_dual = false

[[targets]]
url = {q(archive_url)}

[[keys]]
provider = "local"
path = {q(str(keyring))}
"""
