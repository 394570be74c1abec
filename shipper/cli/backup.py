"""``binlog-shipper backup take|register|list``: base backups for point-in-time restore."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from shipper.cli.common import add_config_args, load_config, print_json
from shipper.keys import make_provider
from shipper.manifest import Manifest
from shipper.restore import backup as backups
from shipper.restore.tools import Conn
from shipper.storage import open_backend


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "backup",
        help="take, register or list base backups",
        description="Base backups are where a point-in-time restore starts.",
    )
    bs = p.add_subparsers(dest="backup_command", metavar="ACTION")
    bs.required = True

    take = bs.add_parser("take", help="take a backup and archive it (encrypted)")
    add_config_args(take)
    take.add_argument("--tool", choices=backups.TOOLS, default="mariabackup")
    take.add_argument(
        "--databases",
        nargs="+",
        default=[],
        metavar="DB",
        help="mysqldump only: these databases (default: all)",
    )
    take.add_argument("--json", action="store_true")
    take.set_defaults(func=run_take)

    reg = bs.add_parser("register", help="record a backup taken elsewhere, from its metadata")
    add_config_args(reg)
    reg.add_argument(
        "metadata",
        type=Path,
        metavar="FILE",
        help="xtrabackup_binlog_info, xtrabackup_info, or the dump itself",
    )
    reg.add_argument("--tool", choices=backups.TOOLS)
    reg.add_argument("--id", dest="backup_id")
    reg.add_argument("--location", help="where the backup lives (default: FILE's directory)")
    reg.add_argument(
        "--consistent-at",
        metavar="TIME",
        help="when its data is consistent, ISO 8601 with offset (default: FILE's mtime)",
    )
    reg.set_defaults(func=run_register)

    ls = bs.add_parser("list", help="list base backups")
    add_config_args(ls)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=run_list)


def _conn(cfg: Any) -> Conn:
    m = cfg.mysql
    return Conn(socket=m.socket, host=m.host, port=m.port, user=m.user, password=m.password())


def run_take(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    stores = [open_backend(t.url, t.options) for t in cfg.write_targets()]
    providers = [make_provider(k) for k in cfg.keys]
    row = backups.take(
        args.tool,
        _conn(cfg),
        stores,
        providers,
        tenant=cfg.tenant,
        tenant_prefix=cfg.tenant_prefix,
        work_dir=cfg.state_dir / "backups",
        level=cfg.compression_level,
        chunk_size=cfg.chunk_size,
        databases=args.databases,
    )
    with Manifest(cfg.state_dir / "manifest.sqlite") as m:
        m.add_backup(**row)
    if args.json:
        print_json(row)
    else:
        print(
            f"backup {row['id']} ({row['tool']}): {row['size']} bytes, consistent with "
            f"{row['binlog_file']}:{row['binlog_pos']} (GTID {row['gtid_set'] or '-'}), "
            f"archived at {row['object_key']}"
        )
    return 0


def run_register(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    when = None
    if args.consistent_at:
        t = dt.datetime.fromisoformat(args.consistent_at)
        if t.tzinfo is None:
            from shipper.errors import ConfigError

            raise ConfigError("--consistent-at needs an offset (Z or +HH:MM)")
        when = t.timestamp()
    row = backups.register(
        args.metadata,
        tool=args.tool,
        location=args.location,
        backup_id=args.backup_id,
        consistent_at=when,
    )
    with Manifest(cfg.state_dir / "manifest.sqlite") as m:
        m.add_backup(**row)
    print(
        f"registered backup {row['id']} ({row['tool']}) at "
        f"{row['binlog_file']}:{row['binlog_pos']} (GTID {row['gtid_set'] or '-'})"
    )
    return 0


def run_list(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    with Manifest(cfg.state_dir / "manifest.sqlite") as m:
        rows = m.backups()
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no base backups (take one with: binlog-shipper backup take)")
    for r in rows:
        when = dt.datetime.fromtimestamp(r["started_at"] or 0, dt.UTC).strftime(
            "%Y-%m-%dT%H:%M:%SZ"
        )
        print(
            f"{r['id']}  {r['tool']:<11} {when}  {r['binlog_file']}:{r['binlog_pos']}  "
            f"GTID {r['gtid_set'] or '-'}  {r['object_key'] or r['extra'].get('location')}"
        )
    return 0
