"""``binlog-shipper status``: what is archived where, what is pending, what went wrong.

Every configured target is listed with its routing role (a target the host
does not write is shown, with a warning saying why), and every binlog with its
state on each target. Times in ``--json`` are RFC 3339 UTC strings
(``2026-11-24T10:41:07.250000Z``; microseconds where the manifest has them).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from shipper.cli.common import add_config_args, load_config, print_json
from shipper.errors import StateError
from shipper.manifest import BinlogRow, Manifest, Placement
from shipper.pipeline import routing

#: BinlogRow fields that are times (seconds since the epoch)
_TIME_FIELDS = ("first_ts", "last_ts", "discovered_at", "updated_at", "committed_at")


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("status", help="show the state manifest")
    add_config_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def rfc3339(ts: float | None) -> str | None:
    """``2026-11-24T10:41:07Z``, or with microseconds when ``ts`` has a fraction."""
    if ts is None:
        return None
    t = dt.datetime.fromtimestamp(ts, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if t.microsecond else "%Y-%m-%dT%H:%M:%SZ")


def _ts(v: float | None) -> str:
    if not v:
        return "-"
    return dt.datetime.fromtimestamp(v, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def target_state(row: BinlogRow, p: Placement | None, route: routing.Route | None) -> str:
    """One binlog on one target: verified, lineage (verified under a lineage key),
    failed, missing (a written target without it) or not-written."""
    if p is not None and p.state == "verified":
        return "lineage" if ".lineage-" in (p.object_key or "") else "verified"
    if p is not None:
        return "failed"
    if route is not None and not route.written:
        return "not-written"
    if row.state in ("gap",):
        return "-"
    return "missing"


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    path = cfg.state_dir / "manifest.sqlite"
    if not path.exists():
        raise StateError(
            f"no state manifest at {path}: nothing has been shipped yet "
            "(run: binlog-shipper run --once)"
        )
    with Manifest(path) as m:
        rows = m.all()
        counts = m.counts()
        journal = m.journal_entries()
        placements = m.all_placements()
    routes = routing.routes(cfg)
    by_url = {r.url: r for r in routes}
    # targets the manifest knows that the config no longer lists are shown too
    urls = [r.url for r in routes] + sorted(
        {u for per in placements.values() for u in per} - set(by_url)
    )
    warnings = routing.warnings(cfg)
    problems = [e for e in journal if e["kind"] in ("gap", "flagged", "lineage_conflict")]
    per_row = [(r, {u: placements.get((r.name, r.lineage), {}).get(u) for u in urls}) for r in rows]
    if args.json:
        print_json(
            {
                "tenant": cfg.tenant,
                "state_dir": str(cfg.state_dir),
                "targets": [
                    by_url[u].as_dict()
                    if u in by_url
                    else {"url": u, "role": "unconfigured", "written": False, "why": ""}
                    for u in urls
                ],
                "warnings": warnings,
                "counts": counts,
                "binlogs": [_row_json(r, ps, by_url) for r, ps in per_row],
                "problems": [{**e, "at": rfc3339(e["at"])} for e in problems],
            }
        )
        return 0
    for w in warnings:
        print(f"binlog-shipper: warning: {w}", file=sys.stderr)
    print(f"tenant {cfg.tenant}   state {cfg.state_dir}")
    print("targets:")
    for i, u in enumerate(urls, 1):
        route = by_url.get(u)
        role = route.role if route else "unconfigured"
        written = "written" if route and route.written else "NOT WRITTEN by this host"
        print(f"  [{i}] {u}  {role}, {written}")
    print("  ".join(f"{k}={v}" for k, v in counts.items() if v))
    print(
        f"{'BINLOG':<22} {'STATE':<10} {'SIZE':>12} {'FIRST EVENT (UTC)':<21} "
        f"{'LAST EVENT (UTC)':<21} {'FILE':<10} TARGETS"
    )
    for r, ps in per_row:
        where = " ".join(
            f"[{i}]{target_state(r, ps[u], by_url.get(u))}" for i, u in enumerate(urls, 1)
        )
        print(
            f"{r.name:<22} {r.state:<10} {r.size or 0:>12} {_ts(r.first_ts):<21} "
            f"{_ts(r.last_ts):<21} {r.file_status or '-':<10} {where}"
        )
        if r.error and r.state != "committed":
            print(f"    ! {r.error}")
    for e in problems:
        print(f"! {e['kind']}: {e['binlog']} {e['detail']}")
    for w in warnings:
        print(f"! warning: {w}")
    return 0


def _row_json(
    r: BinlogRow, ps: dict[str, Placement | None], routes: dict[str, routing.Route]
) -> dict[str, Any]:
    d = r.as_dict()
    for f in _TIME_FIELDS:
        d[f] = rfc3339(d[f])
    d["placements"] = {
        u: {
            **(p.as_dict() if p else {"target": u}),
            "state": target_state(r, p, routes.get(u)),
            "verified_at": rfc3339(p.verified_at) if p else None,
        }
        for u, p in ps.items()
    }
    return d
