"""``binlog-shipper restore plan|apply``: point-in-time restore from the archive.

The arguments of both actions, and ``restore apply``: every object checked in
some target, the restore carried out by :class:`~shipper.restore.executor.Executor`
with a progress bar. How a plan is made (the source, the catalog, the server,
the plan, its check) and the ``plan`` action are in ``cli/restore_plan.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path
from typing import Any

from shipper.cli.common import add_config_args, load_config, print_json
from shipper.cli.restore_plan import (
    describe,
    make_plan,
    open_source,
    plan_from_catalog,
    run_plan,
)
from shipper.config import Config
from shipper.errors import ObjectNotFound, RestoreError, StateError
from shipper.keys import make_provider
from shipper.manifest import Manifest
from shipper.restore.executor import REPLAY_PATHS, ApplyOptions, Executor
from shipper.restore.planner import AMBIGUOUS_POLICIES, Plan
from shipper.restore.tools import Conn, mask_dsn
from shipper.storage import StorageBackend, open_backend

# make_plan, open_source and plan_from_catalog live in cli/restore_plan.py; tests,
# bench/ and functions/aws/restore_planner.py import them from here
__all__ = ["add_parser", "make_plan", "open_source", "plan_from_catalog", "run_apply", "run_plan"]

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
