"""``binlog-shipper status``: what is archived, what is pending, what went wrong."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from shipper.cli.common import add_config_args, load_config, print_json
from shipper.errors import StateError
from shipper.manifest import Manifest


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser("status", help="show the state manifest")
    add_config_args(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def _ts(v: float | None) -> str:
    if not v:
        return "-"
    return dt.datetime.fromtimestamp(v, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


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
    problems = [e for e in journal if e["kind"] in ("gap", "flagged", "lineage_conflict")]
    if args.json:
        print_json(
            {
                "tenant": cfg.tenant,
                "state_dir": str(cfg.state_dir),
                "targets": [t.url for t in cfg.write_targets()],
                "counts": counts,
                "binlogs": [r.as_dict() for r in rows],
                "problems": problems,
            }
        )
        return 0
    print(f"tenant {cfg.tenant}   state {cfg.state_dir}")
    print("targets: " + ", ".join(t.url for t in cfg.write_targets()))
    print("  ".join(f"{k}={v}" for k, v in counts.items() if v))
    print(
        f"{'BINLOG':<22} {'STATE':<10} {'SIZE':>12} {'FIRST EVENT (UTC)':<21} "
        f"{'LAST EVENT (UTC)':<21} FILE"
    )
    for r in rows:
        print(
            f"{r.name:<22} {r.state:<10} {r.size or 0:>12} {_ts(r.first_ts):<21} "
            f"{_ts(r.last_ts):<21} {r.file_status or '-'}"
        )
        if r.error and r.state != "committed":
            print(f"    ! {r.error}")
    for e in problems:
        print(f"! {e['kind']}: {e['binlog']} {e['detail']}")
    return 0
