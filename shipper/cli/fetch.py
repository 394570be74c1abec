"""``binlog-shipper fetch``: download, verify, decrypt and decompress one binlog."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from shipper import output
from shipper.archive import fetch_to_file, find_binlog
from shipper.cli.common import add_config_args, load_config
from shipper.errors import ConfigError
from shipper.keys import make_provider
from shipper.manifest import Manifest
from shipper.storage import open_backend


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "fetch",
        help="restore one archived binlog to a file, byte-identical",
        description="Find BINLOG_NAME in the archive, verify and decrypt it, and write the "
        "original bytes to FILE (only after the whole object verified). FILE may be - "
        "(stdout), a device or FIFO (written into, never replaced), or a symlink (what it "
        "points at); an existing regular file is replaced only with --force.",
    )
    add_config_args(p)
    p.add_argument("binlog", metavar="BINLOG_NAME")
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace FILE if it is an existing regular file (atomically: temp + rename)",
    )
    p.add_argument(
        "--from",
        dest="source",
        metavar="URL",
        help="target to read from (default: the first configured target)",
    )
    p.add_argument("--server-id", type=int, help="pick the server when several share the name")
    p.add_argument("--key", help="exact object key (skips the search)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    dest = output.resolve(args.output, force=args.force)  # refuse before downloading
    urls = [t.url for t in cfg.targets]
    url = args.source or urls[0]
    target = next((t for t in cfg.targets if t.url == url), None)
    if args.source and target is None:
        raise ConfigError(f"--from {url}: not a configured target ({', '.join(urls)})")
    backend = open_backend(url, target.options if target else {})
    providers = [make_provider(k) for k in cfg.keys]
    key = args.key
    if key is None:
        manifest = cfg.state_dir / "manifest.sqlite"
        if manifest.exists():
            with Manifest(manifest) as m:
                row = m.get(args.binlog, target=url)  # that target's key (placements)
                if row and row.object_key and row.state == "committed":
                    key = row.object_key
    if key is None:
        key = find_binlog(backend, cfg.tenant_prefix, args.binlog, args.server_id).key
    res = output.write(
        dest,
        lambda tmp: fetch_to_file(backend, key, providers, tmp),
        scratch=cfg.state_dir,
    )
    print(
        f"{args.binlog}: {res.plaintext_size} bytes, sha256 {res.plaintext_sha256}, "
        f"verified, written to {dest}",
        file=sys.stderr if dest.kind == "stdout" else sys.stdout,
    )
    return 0
