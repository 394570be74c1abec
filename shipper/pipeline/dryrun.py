"""``run --dry-run``: what would be shipped, where, and whether we may.

Uploads nothing and changes no state: reads the server's binlog list, scans
each pending closed binlog for its first timestamp (which fixes its key), and
runs each written target's permission checks. Every configured target is
listed with its routing role; one the host will not write comes with a warning
saying why and what to set instead (``pipeline/routing.py``).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from shipper import objects
from shipper.binlog import scan_file
from shipper.config import Config
from shipper.errors import ShipperError
from shipper.keys import make_provider
from shipper.manifest import Manifest
from shipper.pipeline import routing
from shipper.pipeline.discover import read_state
from shipper.storage import open_backend


def dry_run(cfg: Config) -> dict[str, Any]:
    state = read_state(cfg.mysql)
    binlog_dir = Path(cfg.mysql.binlog_dir or state.binlog_dir)
    committed: set[str] = set()
    routes = routing.routes(cfg)
    targets = [r.target for r in routes if r.written]
    #: written target -> committed binlogs it lacks (a target added later): backfilled
    backfill: dict[str, list[str]] = {}
    manifest_path = cfg.state_dir / "manifest.sqlite"
    if manifest_path.exists():
        with Manifest(manifest_path) as m:
            committed = {r.name for r in m.all() if r.state in ("committed", "flagged", "gap")}
            backfill = {t.url: [r.name for r in m.unplaced(t.url)] for t in targets}
    pending = []
    for name, size in state.closed:
        if name in committed:
            continue
        entry: dict[str, Any] = {"binlog": name, "size": size}
        try:
            info = scan_file(binlog_dir / name)
        except (OSError, ShipperError) as e:
            entry["error"] = str(e)
            pending.append(entry)
            continue
        server_id = info.server_id if info.server_id is not None else state.server_id
        key = objects.binlog_key(cfg.tenant_prefix, server_id, info.first_timestamp or 0, name)
        entry.update(
            status=info.status,
            first_timestamp=objects.utc_iso(info.first_timestamp),
            keys={t.url: key for t in targets},
        )
        pending.append(entry)
    providers: list[Any] = []
    checks: list[dict[str, Any]] = []
    for k in cfg.keys:
        try:
            providers.append(make_provider(k))
        except ShipperError as e:
            checks.append(
                {
                    "target": k.get("provider"),
                    "name": "key provider usable",
                    "status": "denied",
                    "detail": str(e),
                }
            )
    for t in targets:
        try:
            backend = open_backend(t.url, t.options)
        except ShipperError as e:
            checks.append(
                {"target": t.url, "name": "target reachable", "status": "denied", "detail": str(e)}
            )
            continue
        checks.extend(_checks(backend, providers))
    return {
        "server": {
            "active": state.active,
            "server_id": state.server_id,
            "version": state.version,
            "binlog_dir": str(binlog_dir),
            "expire_seconds": state.expire_seconds,
        },
        "pending": pending,
        "targets": [
            {**r.as_dict(), **({"backfill": backfill[r.url]} if backfill.get(r.url) else {})}
            for r in routes
        ],
        "warnings": routing.warnings(cfg),
        "checks": checks,
    }


def _checks(backend: Any, providers: list[Any]) -> list[dict[str, Any]]:
    with contextlib.suppress(ModuleNotFoundError):
        from shipper.storage.preflight import preflight  # type: ignore[import-not-found,unused-ignore]

        return [
            c if isinstance(c, dict) else c.as_dict()
            for c in preflight(backend, key_providers=providers)
        ]
    return []
