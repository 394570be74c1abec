"""``binlog-shipper restore plan``, and how every restore plan is made.

Which configured target the archive is read from (``open_source``), which
catalog the plan is read through (``open_catalog``: the host manifest, an archive
scan, or the fleet catalog), which server (``pick_server``), the plan itself
(``plan_from_catalog``, over the pure planner) and the check that every object
it names is there before anything else happens (``check_objects``).

Apart from ``cli/restore.py`` (the arguments of both actions, and ``restore
apply``) because more than the ``plan`` action uses it: ``apply`` plans the same
way before it touches anything, ``backup list --from`` opens its source the same
way, and the restore-planner Lambda calls ``plan_from_catalog``, so the CLI and
the Lambda cannot plan differently.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from shipper import objects
from shipper.archive import read_object
from shipper.binlog.index import TransactionIndex
from shipper.catalog.archive import ArchiveCatalog, default_cache_dir
from shipper.catalog.base import Catalog
from shipper.catalog.manifest import ManifestCatalog
from shipper.cli.common import load_config, print_json
from shipper.config import Config
from shipper.errors import ConfigError, ObjectNotFound, RestoreError, StateError
from shipper.keys import make_provider
from shipper.manifest import Manifest
from shipper.restore.model import ArchivedBinlog, iso_us, parse_target
from shipper.restore.planner import Plan, plan_restore
from shipper.storage import StorageBackend, open_backend


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
