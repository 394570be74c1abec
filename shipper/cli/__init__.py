"""Command-line entry point. One module per subcommand; each exposes
``add_parser(subparsers)`` and ``run(args) -> int``. Errors are mapped to exit
codes here, in one place."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from shipper import __version__
from shipper.errors import ShipperError

#: subcommand name -> module under shipper.cli
SUBCOMMANDS = {
    "init": "init",
    "run": "run",
    "status": "status",
    "inspect": "inspect",
    "fetch": "fetch",
    "backup": "backup",
    "restore": "restore",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="binlog-shipper",
        description="Archive MySQL/MariaDB binary logs, encrypted, and restore to any moment.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for modname in SUBCOMMANDS.values():
        try:
            mod = importlib.import_module(f"shipper.cli.{modname}")
        except ModuleNotFoundError as e:
            if e.name == f"shipper.cli.{modname}":
                continue  # subcommand not built yet
            raise
        mod.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        return int(args.func(args))
    except ShipperError as e:
        print(f"binlog-shipper: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("binlog-shipper: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
