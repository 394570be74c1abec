"""``binlog-shipper restore plan|apply``: point-in-time restore from the archive."""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

from shipper import objects
from shipper.archive import read_object
from shipper.binlog.index import TransactionIndex
from shipper.catalog.archive import ArchiveCatalog, default_cache_dir
from shipper.catalog.base import Catalog
from shipper.catalog.manifest import ManifestCatalog
from shipper.cli.common import add_config_args, load_config, print_json
from shipper.config import Config
from shipper.errors import ConfigError, ObjectNotFound, RestoreError, StateError
from shipper.keys import make_provider
from shipper.manifest import Manifest
from shipper.restore.executor import REPLAY_PATHS, ApplyOptions, Executor
from shipper.restore.model import ArchivedBinlog, iso_us, parse_target
from shipper.restore.planner import AMBIGUOUS_POLICIES, Plan, plan_restore
from shipper.restore.tools import Conn, mask_dsn
from shipper.storage import StorageBackend, open_backend

CATALOGS = ("auto", "manifest", "archive")


def catalog_choice(text: str) -> str:
    """``--catalog``: one of :data:`CATALOGS`, or the fleet catalog ``dynamodb://TABLE``."""
    if text in CATALOGS or (text.startswith("dynamodb://") and len(text) > len("dynamodb://")):
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r}: choose from {', '.join(CATALOGS)} or dynamodb://TABLE"
    )


TARGET_HELP = (
    "'latest', a time with an offset (2026-11-24T10:41:07.250Z), a GTID set "
    "(0-1-532 or uuid:1-77) or FILE:POS"
)


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "restore",
        help="plan or carry out a point-in-time restore",
        description="Restore a database to any moment from a base backup and the archived "
        "binlogs. `plan` prints what would be done; `apply` does it.",
    )
    rs = p.add_subparsers(dest="restore_command", metavar="ACTION")
    rs.required = True

    def common(q: argparse.ArgumentParser) -> None:
        add_config_args(q)
        q.add_argument("--to", required=True, metavar="TARGET", help=TARGET_HELP)
        q.add_argument(
            "--ambiguous",
            choices=AMBIGUOUS_POLICIES,
            default="exclude",
            help="MariaDB stamps whole seconds: for a time inside a second that "
            "holds several transactions, exclude (default: only what surely "
            "committed by the target) or include them",
        )
        q.add_argument(
            "--backup",
            dest="backup_id",
            metavar="ID",
            help="use this base backup (default: the newest one that fits)",
        )
        q.add_argument(
            "--from",
            dest="source",
            metavar="URL",
            help="the configured target to read the archive from (default: the first)",
        )
        q.add_argument(
            "--catalog",
            type=catalog_choice,
            default="auto",
            help="what the plan is read from: the state manifest, or a scan of the archive "
            "(the --from target; cached under STATE_DIR/cache/), or the fleet catalog "
            "dynamodb://TABLE (region and endpoint from [catalog] when it names that table). "
            "Default auto: the manifest if the state dir has one, else the archive (a fresh "
            "machine needs only the config and the key)",
        )
        q.add_argument(
            "--server-id",
            type=int,
            metavar="N",
            help="the server to restore, when the archive holds several",
        )

    plan = rs.add_parser("plan", help="print the restore plan")
    common(plan)
    plan.add_argument("--json", action="store_true", help="machine-readable plan")
    plan.set_defaults(func=run_plan)

    ap = rs.add_parser("apply", help="restore into a new datadir or an empty server")
    common(ap)
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--datadir", type=Path, help="new (empty) datadir to build")
    where.add_argument(
        "--target-dsn",
        metavar="DSN",
        help="existing empty server: socket=PATH,user=U or host=H,port=P,user=U",
    )
    ap.add_argument(
        "--replay",
        choices=REPLAY_PATHS,
        default="applier",
        help="applier: the server's replication SQL thread (default, fast); "
        "pipe: mariadb-binlog | mariadb",
    )
    ap.add_argument(
        "--parallel",
        type=int,
        default=0,
        metavar="N",
        help="parallel applier threads (applier replay; default 0: serial)",
    )
    ap.add_argument(
        "--work-dir",
        type=Path,
        help="scratch space and resume journal (default: one per destination under "
        "STATE_DIR/restore/)",
    )
    ap.add_argument(
        "--backup-location",
        type=Path,
        help="local copy of a registered backup that has no archived object",
    )
    ap.add_argument(
        "--server-option",
        action="append",
        default=[],
        metavar="OPT",
        help="extra mariadbd option for the restoring server, e.g. "
        "--server-option=--innodb-buffer-pool-size=8G (repeatable)",
    )
    ap.add_argument(
        "--force",
        action="store_true",
        help="with --target-dsn: load into a server that already holds user databases "
        "(its mysql schema, the accounts, is kept)",
    )
    ap.add_argument("--json", action="store_true", help="print the plan and result as JSON")
    ap.set_defaults(func=run_apply)


def open_source(cfg: Config, source: str | None) -> StorageBackend:
    urls = [t.url for t in cfg.targets]
    url = source or urls[0]
    target = next((t for t in cfg.targets if t.url == url), None)
    if source and target is None:
        raise ConfigError(f"--from {url}: not a configured target ({', '.join(urls)})")
    return open_backend(url, target.options if target else {})


def open_catalog(
    cfg: Config,
    source: str | None,
    backend: StorageBackend,
    providers: list[Any],
    kind: str = "auto",
) -> Catalog:
    """What the plan is read from. ``auto``: the host manifest when the state dir has a
    usable one (with the keys the ``--from`` target holds: a lineage conflict may differ
    per target), else -- a fresh machine, or a damaged manifest -- a scan of the target
    ``backend`` reads, said on stderr. ``archive`` always scans; ``manifest`` requires
    the manifest; ``dynamodb://TABLE`` reads the fleet catalog."""
    if kind.startswith("dynamodb://"):
        from shipper.catalog.dynamodb import DynamoCatalog

        opts = dict(cfg.catalog.options) if cfg.catalog and cfg.catalog.url == kind else {}
        # the copies that count are those in the cloud the objects are read from
        opts["cloud"] = {"s3": "aws", "gs": "gcp"}.get(backend.url.split(":", 1)[0], "local")
        return DynamoCatalog.from_url(kind, opts)
    manifest = cfg.state_dir / "manifest.sqlite"
    if kind == "auto" and manifest.exists() and not _usable(manifest):
        print(f"planning from the archive at {backend.url} instead", file=sys.stderr)
        kind = "archive"
    if kind == "manifest" or (kind == "auto" and manifest.exists()):
        if not manifest.exists():
            raise StateError(
                f"--catalog manifest: no state manifest at {manifest} (on a machine "
                "without one, plan from the archive: --catalog archive)"
            )
        return ManifestCatalog(manifest, target=source or cfg.targets[0].url)
    if kind == "auto":
        print(
            f"no state manifest at {manifest}: planning from the archive at {backend.url}",
            file=sys.stderr,
        )
    return ArchiveCatalog(backend, providers, cache_dir=default_cache_dir(cfg.state_dir))


def _usable(manifest: Path) -> bool:
    """Whether the manifest opens (its integrity check passes); says why not on stderr."""
    try:
        with Manifest(manifest):
            return True
    except StateError as e:
        print(f"binlog-shipper: {e}", file=sys.stderr)
        return False


def pick_server(catalog: Catalog, tenant: str, server_id: int | None) -> int | None:
    """``--server-id``, or the only server the archive holds; None when it holds none."""
    servers = catalog.servers(tenant)
    if server_id is not None:
        if servers and server_id not in servers:
            raise RestoreError(
                f"--server-id {server_id}: tenant {tenant} has nothing archived for it "
                f"(servers: {', '.join(map(str, servers))})"
            )
        return server_id
    if len(servers) > 1:
        raise RestoreError(
            f"tenant {tenant} has archives of servers {', '.join(map(str, servers))}: "
            "choose one with --server-id"
        )
    return servers[0] if servers else None


def make_plan(
    args: argparse.Namespace,
    cfg: Config,
    backend: StorageBackend,
    providers: list[Any],
    catalog: Catalog | None = None,
    check: bool = True,
) -> Plan:
    """Plan from ``catalog`` (default: :func:`open_catalog`), then check that every object
    the plan names is in ``backend`` before anything else is done (``check=False``:
    the caller checks, e.g. across every target for ``restore apply``'s fallback)."""
    if catalog is None:
        catalog = open_catalog(
            cfg,
            getattr(args, "source", None),
            backend,
            providers,
            getattr(args, "catalog", "auto"),
        )
    return plan_from_catalog(
        catalog,
        cfg.tenant,
        getattr(args, "server_id", None),
        args.to,
        backend,
        providers,
        ambiguous=args.ambiguous,
        backup_id=args.backup_id,
        check=check,
    )


def plan_from_catalog(
    catalog: Catalog,
    tenant: str,
    server_id: int | None,
    target: str,
    backend: StorageBackend,
    providers: list[Any],
    *,
    ambiguous: str = "exclude",
    backup_id: str | None = None,
    check: bool = True,
) -> Plan:
    """The plan for ``target`` from ``catalog`` (what ``restore plan`` and the
    restore-planner Lambda both call), indexes read from ``backend``; ``check``: every
    object it names exists there (:func:`check_objects`)."""
    sid = pick_server(catalog, tenant, server_id)
    rows = catalog.binlogs(tenant, sid) if sid is not None else []
    backups = catalog.backups(tenant, sid) if sid is not None else []

    def load_index(row: ArchivedBinlog) -> TransactionIndex:
        key = row.index_key or (objects.index_key(row.object_key) if row.object_key else None)
        if key is None:
            raise StateError(f"binlog {row.name} has no object key in the catalog")
        return TransactionIndex.from_bytes(read_object(backend, key, providers))

    plan = plan_restore(
        parse_target(target),
        backups,
        rows,
        load_index,
        ambiguous=ambiguous,
        backup_id=backup_id,
    )
    if check:
        check_objects(plan, backend, catalog)
    return plan


def check_objects(plan: Plan, backend: StorageBackend, catalog: Catalog) -> None:
    """Every object the plan names exists: one stat each, unless the catalog just saw it."""
    keys: list[tuple[str, str]] = []
    if plan.backup.object_key:
        keys.append((plan.backup.object_key, f"backup {plan.backup.id}"))
    for s in plan.steps:
        if not s.object_key:
            raise RestoreError(f"binlog {s.name} has no object key in the catalog")
        keys.append((s.object_key, f"binlog {s.name}"))
        keys.append((objects.index_key(s.object_key), f"the transaction index of {s.name}"))
    for key, what in keys:
        if catalog.confirms(key):
            continue
        try:
            backend.stat(key)
        except ObjectNotFound as e:
            raise RestoreError(
                f"{what} is in the plan but not in the archive: {backend.url}/{key} does not "
                "exist; plan --from another target, or restore to a point before it"
            ) from e


def describe(plan: Plan) -> str:
    lines = [
        f"target     {plan.target.kind} {plan.target.text}",
        f"backup     {plan.backup.id} ({plan.backup.tool}) at {plan.backup.position}",
        f"replay     {len(plan.steps)} binlog(s) from {plan.start} to {plan.stop}",
    ]
    for s in plan.steps:
        lines.append(f"  {s.name}  {s.start}..{s.stop if s.stop is not None else 'end'}")
    last = plan.last_transaction
    if last is not None:
        lines.append(f"restores to {iso_us(last.commit_us)} (transaction {last.gtid})")
    lines.append(f"GTID set   {plan.gtid_set or '(none)'}")
    lines.append(f"precision  {plan.precision.resolution}: {plan.precision.note}")
    lines.extend(f"note       {n}" for n in plan.notes)
    lines.append(f"window     {plan.window}")
    return "\n".join(lines)


def run_plan(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    backend = open_source(cfg, args.source)
    providers = [make_provider(k) for k in cfg.keys]
    plan = make_plan(args, cfg, backend, providers)
    if args.json:
        print_json(plan.to_dict())
    else:
        print(describe(plan))
    return 0


class _Bar:
    """A rich progress bar per phase (bytes, rate, ETA); silent when stderr is no TTY."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("{task.description:8}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
        )
        self.tasks: dict[str, Any] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(phase, total=total)
        self.progress.update(self.tasks[phase], completed=done, total=total)


def default_work_dir(cfg: Config, args: argparse.Namespace) -> Path:
    """One work dir (and resume journal) per restore destination."""
    # The DSN without its password: no hash of a secret in a path, and the same
    # server reached with a new password keeps its journal.
    into = str(args.datadir.resolve()) if args.datadir else mask_dsn(args.target_dsn)
    return cfg.state_dir / "restore" / hashlib.sha256(into.encode()).hexdigest()[:12]


def fallback_keys(cfg: Config, first: str, others: list[Any]) -> list[dict[str, str]]:
    """For each target after the first: first target's key -> that target's, where the
    manifest's placements say they differ (a lineage conflict on one target only).
    Without a usable manifest (a fresh machine): the same keys everywhere."""
    maps: list[dict[str, str]] = [{} for _ in range(len(others) + 1)]
    path = cfg.state_dir / "manifest.sqlite"
    if not path.exists():
        return maps
    try:
        with Manifest(path) as m:
            mine = [r.object_key for r in m.all(target=first)]
            for i, t in enumerate(others, 1):
                theirs = [r.object_key for r in m.all(target=t.url)]
                pairs = zip(mine, theirs, strict=True)
                maps[i] = {a: b for a, b in pairs if a and b and a != b}
    except StateError:
        pass  # a damaged manifest: the plan came from the archive (open_catalog)
    return maps


def check_everywhere(
    plan: Plan, stores: list[StorageBackend], keys_in: list[dict[str, str]]
) -> None:
    """Every object the plan names is in at least one target (tried in order), before
    anything is applied: one stat each where the first target holds it."""
    keys = [plan.backup.object_key] if plan.backup.object_key else []
    for s in plan.steps:
        if not s.object_key:
            raise RestoreError(f"binlog {s.name} has no object key in the catalog")
        keys.append(s.object_key)
    for key in keys:
        tried = []
        for store, mapping in zip(stores, keys_in, strict=True):
            here = mapping.get(key, key)
            try:
                store.stat(here)
                break
            except ObjectNotFound:
                tried.append(f"{store.url}/{here}")
        else:
            raise RestoreError(
                f"{key} is in the plan but in no configured target ({', '.join(tried)}); "
                "restore to a point before it, or from a backup taken after it"
            )


def run_apply(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    backend = open_source(cfg, args.source)
    # The chosen target first, then the others in configured order: an object missing or
    # failing verification in one is read from the next.
    first = args.source or cfg.targets[0].url
    others = [t for t in cfg.targets if t.url != first]
    stores = [backend] + [open_backend(t.url, t.options) for t in others]
    providers = [make_provider(k) for k in cfg.keys]
    plan = make_plan(args, cfg, backend, providers, check=False)
    keys_in = fallback_keys(cfg, first, others)
    check_everywhere(plan, stores, keys_in)
    if not args.json:
        print(describe(plan), flush=True)
    bar = _Bar()
    opts = ApplyOptions(
        work_dir=args.work_dir or default_work_dir(cfg, args),
        datadir=args.datadir.resolve() if args.datadir else None,
        target=Conn.parse(args.target_dsn) if args.target_dsn else None,
        replay=args.replay,
        parallel=args.parallel,
        backup_location=args.backup_location,
        server_args=list(args.server_option),
        progress=bar,
        force=args.force,
    )
    ex = Executor(plan, stores, providers, opts, keys_in)
    try:
        with bar.progress:
            result = ex.run()
    finally:  # also when the restore fails: what fell back, what was stopped or redone
        for line in ex.notices:
            print(f"binlog-shipper: warning: {line}", file=sys.stderr)
    if args.json:
        print_json(
            {
                "plan": plan.to_dict(),
                "result": {
                    "stop": f"{result.stop_file}:{result.stop_pos}",
                    "replayed_bytes": result.replayed_bytes,
                    "seconds": result.seconds,
                    "notices": result.notices,
                },
            }
        )
    else:
        where = f"datadir {opts.datadir}" if opts.target is None else f"server {opts.target}"
        print(
            f"restored {where} to {plan.stop} (GTID {plan.gtid_set or '-'}); replayed "
            f"{result.replayed_bytes} binlog bytes",
            file=sys.stdout,
        )
    return 0
