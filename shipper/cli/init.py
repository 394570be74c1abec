"""``binlog-shipper init``: write a config and a new local keyring."""

from __future__ import annotations

import argparse
import os
import tomllib
from pathlib import Path
from typing import Any

from shipper import config as config_mod
from shipper.errors import ConfigError
from shipper.keys.local import LocalKeyring


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "init",
        help="write a config and a new local keyring into a state dir",
        description="Create STATE_DIR/config.toml (local archive, local keyring) and "
        "STATE_DIR/keyring (a 32-byte key encryption key, mode 0600).",
    )
    p.add_argument("--state-dir", type=Path, required=True)
    p.add_argument("--tenant", default="default")
    p.add_argument(
        "--archive",
        help="target URL: file:///path, s3://bucket/prefix or gs://bucket/prefix "
        "(default: file://STATE_DIR/archive); routing.primary follows its cloud",
    )
    p.add_argument("--mysql-socket", default="")
    p.add_argument("--mysql-host", default="127.0.0.1")
    p.add_argument("--mysql-port", type=int, default=3306)
    p.add_argument("--mysql-user", default="root")
    p.add_argument("--mysql-password-file", default="")
    p.add_argument("--binlog-dir", default="")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir.resolve()
    cfg_path = state_dir / "config.toml"
    keyring = state_dir / "keyring"
    if cfg_path.exists():
        raise ConfigError(f"{cfg_path} already exists; not overwriting it")
    archive = args.archive or f"file://{state_dir / 'archive'}"
    mysql = config_mod.MySQLConfig(
        host=args.mysql_host,
        port=args.mysql_port,
        user=args.mysql_user,
        password_file=args.mysql_password_file,
        socket=args.mysql_socket,
        binlog_dir=args.binlog_dir,
    )
    text = config_mod.render_default(
        state_dir, tenant=args.tenant, mysql=mysql, archive_url=archive, keyring=keyring
    )
    # what we write must load: check it before anything lands on disk
    config_mod.parse(tomllib.loads(text), cfg_path)
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not keyring.exists():
        LocalKeyring.create(keyring)
        made_key = True
    else:
        LocalKeyring.load(keyring)
        made_key = False
    tmp = cfg_path.with_name(".config.toml.tmp")
    tmp.write_text(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, cfg_path)
    print(f"wrote {cfg_path}")
    print(
        f"{'created' if made_key else 'kept existing'} keyring {keyring} (mode 0600) -- "
        "back it up: without it the archive cannot be decrypted"
    )
    return 0
