"""``binlog-shipper backup take|register|verify|delete|list``: base backups for PITR.

The archive's record objects are the backup catalogue; the manifest's
``backups`` table is the host's cache of them (see shipper/restore/backup_records.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import Any

from shipper.cli.common import add_config_args, load_config, print_json
from shipper.config import Config
from shipper.errors import ConfigError, DatabaseError, IntegrityError, RestoreError
from shipper.keys import make_provider
from shipper.keys.base import KeyProvider
from shipper.manifest import Manifest
from shipper.records import write_record
from shipper.restore import backup as backups
from shipper.restore import backup_records
from shipper.restore.tools import Conn, scalar
from shipper.storage import StorageBackend, open_backend


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "backup",
        help="take, register, verify, delete or list base backups",
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

    reg = bs.add_parser(
        "register",
        help="record a backup taken elsewhere (FILE), or re-record an archived one",
        description="Record a backup taken elsewhere from its metadata FILE, or put an "
        "archived backup back into this host's manifest from its record object "
        "(--from-archive ID), e.g. after the state dir was lost.",
    )
    add_config_args(reg)
    reg.add_argument(
        "metadata",
        type=Path,
        nargs="?",
        metavar="FILE",
        help="xtrabackup_binlog_info, xtrabackup_info, or the dump itself",
    )
    reg.add_argument("--from-archive", metavar="ID", help="re-record archived backup ID")
    reg.add_argument("--from", dest="source", metavar="URL", help=_FROM_HELP)
    reg.add_argument("--tool", choices=backups.TOOLS)
    reg.add_argument("--id", dest="backup_id")
    reg.add_argument("--server-id", type=int, help="the backup's server id (default: ask it)")
    reg.add_argument("--location", help="where the backup lives (default: FILE's directory)")
    reg.add_argument(
        "--consistent-at",
        metavar="TIME",
        help="when its data is consistent, ISO 8601 with offset (default: FILE's mtime)",
    )
    reg.set_defaults(func=run_register)

    ver = bs.add_parser(
        "verify",
        help="authenticate, hash and read an archived backup; record the result",
        description="Read backup ID back from the archive: every chunk authenticated, its "
        "SHA-256 against the record, the dump header or xbstream listing and the "
        "databases it holds. Appends a verified/failed record revision; exit 3 on failure.",
    )
    add_config_args(ver)
    ver.add_argument("backup_id", metavar="ID")
    ver.add_argument("--from", dest="source", metavar="URL", help=_FROM_HELP)
    ver.add_argument("--json", action="store_true")
    ver.set_defaults(func=run_verify)

    dele = bs.add_parser(
        "delete",
        help="delete an archived backup's data (its records stay, as the audit trail)",
    )
    add_config_args(dele)
    dele.add_argument("backup_id", metavar="ID")
    dele.add_argument("--from", dest="source", metavar="URL", help=_FROM_HELP)
    dele.set_defaults(func=run_delete)

    ls = bs.add_parser("list", help="list base backups")
    add_config_args(ls)
    ls.add_argument("--json", action="store_true")
    ls.add_argument(
        "--from",
        dest="source",
        metavar="URL",
        help="list the backup records in this configured target (no manifest needed)",
    )
    ls.set_defaults(func=run_list)


_FROM_HELP = "this archive target only (default: every write target in the config)"


def _conn(cfg: Any) -> Conn:
    m = cfg.mysql
    return Conn(socket=m.socket, host=m.host, port=m.port, user=m.user, password=m.password())


def _stores(cfg: Config, source: str | None = None) -> list[StorageBackend]:
    if source:
        return [open_backend(source, _options_for(cfg, source))]
    return [open_backend(t.url, t.options) for t in cfg.write_targets()]


def _options_for(cfg: Config, url: str) -> dict[str, Any]:
    return next((dict(t.options) for t in cfg.targets if t.url == url), {})


def _providers(cfg: Config) -> list[KeyProvider]:
    return [make_provider(k) for k in cfg.keys]


def _cached(m: Manifest, backup_id: str) -> dict[str, Any] | None:
    return next((r for r in m.backups() if r["id"] == backup_id), None)


def run_take(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    stores = _stores(cfg)
    row = backups.take(
        args.tool,
        _conn(cfg),
        stores,
        _providers(cfg),
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
        dbs = ", ".join(row["extra"]["databases"]) or "no user database"
        print(
            f"backup {row['id']} ({row['tool']}): {row['size']} bytes, consistent with "
            f"{row['binlog_file']}:{row['binlog_pos']} (GTID {row['gtid_set'] or '-'}), "
            f"holds {dbs}; archived at {row['object_key']}, verified, record written"
        )
    return 0


def run_register(args: argparse.Namespace) -> int:
    if (args.metadata is None) == (args.from_archive is None):
        raise ConfigError("backup register needs FILE or --from-archive ID (one of them)")
    cfg = load_config(args)
    if args.from_archive:
        return _register_from_archive(cfg, args.from_archive, args.source)
    when = None
    if args.consistent_at:
        t = dt.datetime.fromisoformat(args.consistent_at)
        if t.tzinfo is None:
            raise ConfigError("--consistent-at needs an offset (Z or +HH:MM)")
        when = t.timestamp()
    server_id = args.server_id
    if server_id is None:
        try:
            server_id = int(scalar(_conn(cfg), "SELECT @@server_id") or 0)
        except DatabaseError as e:
            raise ConfigError(
                f"backup register: cannot ask the server for its server id ({e}); "
                "give it with --server-id N"
            ) from e
    record = backups.register(
        args.metadata,
        tenant=cfg.tenant,
        server_id=server_id,
        tool=args.tool,
        location=args.location,
        backup_id=args.backup_id,
        consistent_at=when,
    )
    stores = _stores(cfg, args.source)
    with Manifest(cfg.state_dir / "manifest.sqlite") as m:
        if _cached(m, record.id):
            raise RestoreError(f"backup {record.id} is already registered: choose another --id")
        for store in stores:
            write_record(store, _providers(cfg), record, tenant_prefix=cfg.tenant_prefix)
        m.add_backup(**record.manifest_row([s.url for s in stores]))
    print(
        f"registered backup {record.id} ({record.tool}) at "
        f"{record.binlog_file}:{record.binlog_pos} (GTID {record.gtid_set or '-'}); "
        f"record written to {', '.join(s.url for s in stores)}"
    )
    return 0


def _register_from_archive(cfg: Config, backup_id: str, source: str | None) -> int:
    stores = _stores(cfg, source)
    rec = backup_records.find_record(stores[0], _providers(cfg), cfg.tenant_prefix, backup_id)
    if rec.verification.state == "deleted":
        raise RestoreError(
            f"backup {backup_id} was deleted ({rec.verification.detail}, record revision "
            f"{rec.revision} on {stores[0].url}): there is nothing to register"
        )
    with Manifest(cfg.state_dir / "manifest.sqlite") as m:
        # Already cached: the archive's record wins (it may have been verified elsewhere).
        again = _cached(m, rec.id) is not None
        m.add_backup(replace=again, **rec.manifest_row([stores[0].url]))
    print(
        f"{'re-registered' if again else 'registered'} backup {rec.id} ({rec.tool}) "
        f"from its record on {stores[0].url} "
        f"(revision {rec.revision}, {rec.verification.state}): "
        f"{rec.binlog_file}:{rec.binlog_pos} (GTID {rec.gtid_set or '-'})"
    )
    return 0


def _update_cache(cfg: Config, outcomes: list[backup_records.Outcome]) -> None:
    """The manifest row follows the worst outcome (a failure on any target counts)."""
    worst = next((o for o in outcomes if o.record.verification.state == "failed"), outcomes[0])
    with Manifest(cfg.state_dir / "manifest.sqlite") as m:
        row = _cached(m, worst.record.id)
        if row is not None:
            m.add_backup(replace=True, **worst.record.manifest_row(row["targets"]))


def run_verify(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    providers = _providers(cfg)
    outcomes = [
        backup_records.verify(store, providers, cfg.tenant_prefix, args.backup_id)
        for store in _stores(cfg, args.source)
    ]
    _update_cache(cfg, outcomes)
    if args.json:
        print_json(
            [
                {
                    "target": o.url,
                    "record_key": o.record_key,
                    "revision": o.record.revision,
                    "state": o.record.verification.state,
                    "detail": o.detail,
                }
                for o in outcomes
            ]
        )
    else:
        for o in outcomes:
            print(
                f"backup {args.backup_id} on {o.url}: {o.record.verification.state}: "
                f"{o.detail} (record revision {o.record.revision})"
            )
    failed = [o for o in outcomes if o.record.verification.state == "failed"]
    if failed:
        raise IntegrityError(
            f"backup {args.backup_id} failed verification on "
            f"{', '.join(o.url for o in failed)}: {failed[0].detail}; the planner will not "
            "use it (take a new backup)"
        )
    return 0


def run_delete(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    providers = _providers(cfg)
    for store in _stores(cfg, args.source):
        o = backup_records.delete(store, providers, cfg.tenant_prefix, args.backup_id)
        print(
            f"backup {args.backup_id} on {o.url}: {o.detail}; record revision "
            f"{o.record.revision} says deleted (earlier revisions kept)"
        )
    with Manifest(cfg.state_dir / "manifest.sqlite") as m:
        if m.remove_backup(args.backup_id):
            print(f"removed backup {args.backup_id} from this host's manifest")
    return 0


def run_list(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    if args.source:
        return _list_archive(cfg, args)
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


def _list_archive(cfg: Any, args: argparse.Namespace) -> int:
    """The newest record of every backup in the archive at ``--from``, with its verification."""
    from shipper.catalog.archive import ArchiveCatalog, default_cache_dir
    from shipper.cli.restore_plan import open_source

    store = open_source(cfg, args.source)
    cat = ArchiveCatalog(
        store, [make_provider(k) for k in cfg.keys], cache_dir=default_cache_dir(cfg.state_dir)
    )
    recs = [r for sid in cat.servers(cfg.tenant) for r in cat.records(cfg.tenant, sid)]
    if args.json:
        print_json([r.to_json() for r in recs])
        return 0
    if not recs:
        print(f"no backup records for tenant {cfg.tenant} in {store.url}")
    for r in recs:
        v = r.verification
        print(
            f"{r.id}  {r.tool:<11} server {r.server_id}  {r.binlog_file}:{r.binlog_pos}  "
            f"GTID {r.gtid_set or '-'}  {v.state}"
            + (f" by {v.by}" if v.by else "")
            + f"  {r.object_key or r.location or '-'}"
        )
    return 0
