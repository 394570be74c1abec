"""Options and helpers shared by subcommands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from shipper import config as config_mod
from shipper.config import Config


def add_config_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "-c",
        "--config",
        type=Path,
        help=f"config file (default: $BINLOG_SHIPPER_CONFIG or {config_mod.DEFAULT_CONFIG_PATH})",
    )
    g.add_argument("--state-dir", type=Path, help="use STATE_DIR/config.toml")


def config_path(args: argparse.Namespace) -> Path:
    if getattr(args, "config", None):
        return Path(args.config)
    if getattr(args, "state_dir", None):
        return Path(args.state_dir) / "config.toml"
    env = os.environ.get("BINLOG_SHIPPER_CONFIG")
    return Path(env) if env else config_mod.DEFAULT_CONFIG_PATH


def load_config(args: argparse.Namespace) -> Config:
    return config_mod.load(config_path(args))


def print_json(doc: Any) -> None:
    json.dump(doc, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")
