"""Command-line entry point. One module per subcommand; each exposes
``add_parser(subparsers)`` and ``run(args) -> int``.

Errors are mapped to exit codes here, in one place, so no command ever ends in
a raw traceback:

* a :class:`~shipper.errors.ShipperError` prints one ``error:`` line and exits
  with its ``exit_code`` (the table in README.md);
* an :class:`OSError` that escaped the code that should have wrapped it prints
  the file and the system's reason and exits 74 (``EX_IOERR``);
* any other exception is a bug: one ``internal error:`` line, exit 70
  (``EX_SOFTWARE``); ``--debug`` or ``BINLOG_SHIPPER_DEBUG=1`` adds the traceback;
* a reader that went away (``status | head -1``) ends the command quietly with
  141, what a shell reports for a process killed by SIGPIPE;
* Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence

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

EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE
EXIT_INTERNAL = 70  # sysexits.h EX_SOFTWARE
EXIT_OS_ERROR = 74  # sysexits.h EX_IOERR

_PROG = "binlog-shipper"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Archive MySQL/MariaDB binary logs, encrypted, and restore to any moment.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    parser.add_argument(
        "--debug",
        action="store_true",
        default=_env_debug(),
        help="print the traceback of an internal error (also: BINLOG_SHIPPER_DEBUG=1)",
    )
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
    for child in sub.choices.values():
        _accept_debug_anywhere(child)
    return parser


def _accept_debug_anywhere(parser: argparse.ArgumentParser) -> None:
    """``binlog-shipper status --debug`` works as well as ``binlog-shipper --debug status``:
    the error line says "run with --debug", and users add it at the end."""
    if "--debug" not in parser._option_string_actions:
        parser.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _accept_debug_anywhere(child)


def _env_debug() -> bool:
    return os.environ.get("BINLOG_SHIPPER_DEBUG", "").strip().lower() in ("1", "true", "yes")


def _say(msg: str) -> None:
    """One line on stderr; a closed stderr must not turn into a second error."""
    line = f"{_PROG}: {msg}"
    with contextlib.suppress(OSError, ValueError):
        try:
            print(line, file=sys.stderr, flush=True)
        except UnicodeEncodeError:  # an ASCII-only terminal still gets the line, escaped
            enc = sys.stderr.encoding or "ascii"
            print(line.encode(enc, "backslashreplace").decode(enc), file=sys.stderr, flush=True)


def _silence_stdout() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush cannot
    fail again and print "Exception ignored ... BrokenPipeError" (the recipe in the
    Python docs, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass  # stdout is not a real file (a test's capture): nothing will flush it later


def _os_error_text(e: OSError) -> str:
    where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
    reason = e.strerror or str(e)
    return f"{where}: {reason}" if where else reason


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    return guarded(lambda: int(args.func(args)), debug=args.debug)


def guarded(body: Callable[[], int], *, debug: bool | None = None) -> int:
    """Run ``body`` and turn whatever escapes it into one line and an exit code (above)."""
    debug = _env_debug() if debug is None else debug
    try:
        rc = body()
        sys.stdout.flush()  # inside the try: a reader that left shows up here
        return rc
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except ShipperError as e:
        _say(f"error: {e}")
        return e.exit_code
    except KeyboardInterrupt:
        _say("interrupted")
        return EXIT_INTERRUPTED
    except OSError as e:
        # Should have been wrapped where it was raised; still name the file, not a traceback.
        _say(f"error: {_os_error_text(e)}")
        if debug:
            traceback.print_exc()
        return EXIT_OS_ERROR
    except Exception as e:
        _say(
            f"internal error: {type(e).__name__}: {e} "
            "(run with --debug for the traceback; please report it)"
        )
        if debug:
            traceback.print_exc()
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
