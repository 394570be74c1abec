"""``binlog-shipper run``: ship closed binlogs (once, watching, or as a dry run)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from shipper import events
from shipper.cli.common import add_config_args, load_config, print_json
from shipper.errors import ShipperError, StorageError
from shipper.pipeline.ship import PassResult, Shipper

log = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="ship closed binlogs",
        description="Ship every closed binlog, then (without --once) keep watching the binlog "
        "directory and ship each binlog as the server closes it.",
    )
    add_config_args(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one pass, then exit")
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="upload nothing; print JSON: pending binlogs, keys, sizes, checks",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args)
    if args.dry_run:
        from shipper.pipeline.dryrun import dry_run

        doc = dry_run(cfg)
        print_json(doc)
        for w in doc["warnings"]:
            print(f"binlog-shipper: warning: {w}", file=sys.stderr)
        return 1 if any(c["status"] == "denied" for c in doc.get("checks", [])) else 0
    # structured events as JSON lines: stderr, or appended to events_file
    handler = events.install(Path(cfg.events_file) if cfg.events_file else None)
    try:
        shipper = Shipper(cfg)
        try:
            if args.once:
                code = _report(shipper.run_once())
                _export(shipper)
                return code
            return watch(shipper)
        finally:
            shipper.close()
    finally:
        events.uninstall(handler)


def _export(shipper: Shipper) -> None:
    """Rewrite the node_exporter textfile, when one is configured."""
    if shipper.cfg.metrics_textfile:
        shipper.metrics.write_textfile(Path(shipper.cfg.metrics_textfile))


def _report(res: PassResult) -> int:
    """Print what the pass did; the exit code: 1 when a binlog failed, was flagged or is
    a gap, else 8 when a target failed as a whole (a storage failure), else 0."""
    for name in res.shipped:
        print(f"shipped  {name}")
    for url, names in res.backfilled.items():
        print(f"backfill {url}: {len(names)} committed binlog(s) copied ({names[0]}..{names[-1]})")
    for name in res.flagged:
        print(f"FLAGGED  {name}: event checksum mismatch; quarantined, not restorable")
    for name in res.gaps:
        print(f"GAP      {name}: purged by the server before it was shipped")
    for name, err in res.failed.items():
        print(f"FAILED   {name}: {err}")
    _print_targets_down(res)
    print(
        f"{len(res.shipped)} shipped, {len(res.already)} already archived, "
        f"{len(res.flagged)} flagged, {len(res.gaps)} gaps, {len(res.failed)} failed"
        + (f", {len(res.blocked)} held back by a target" if res.blocked else "")
    )
    if res.failed or res.flagged or res.gaps:
        return 1
    return StorageError.exit_code if res.targets_down else 0


def _print_targets_down(res: PassResult) -> None:
    # once per target and pass, however many binlogs it held back
    for down in res.targets_down.values():
        print(
            f"TARGET   {down.url} failed: {down.error}; {down.blocked} binlog(s) not written "
            "to it (kept pending, retried next pass)",
            flush=True,
        )


def watch(shipper: Shipper) -> int:
    """Ship on every change in the binlog dir (watchdog), and every poll_interval anyway."""
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    wake = threading.Event()
    stop = threading.Event()

    class _Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            wake.set()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %s: finishing the current binlog, then stopping", signum)
        stop.set()
        wake.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    if shipper.cfg.metrics_address:
        shipper.metrics.serve(shipper.cfg.metrics_address)
        print(f"metrics on http://{shipper.cfg.metrics_address}/metrics", flush=True)
    with shipper.locked():
        _state, binlog_dir = shipper.discover()
        observer = Observer()
        observer.schedule(_Handler(), str(binlog_dir), recursive=False)
        observer.start()
        try:
            while not stop.is_set():
                wake.clear()
                try:
                    state, binlog_dir = shipper.discover()
                    res = shipper.ship_pass(state, binlog_dir)
                    for name in res.shipped:
                        print(f"shipped  {name}", flush=True)
                    _print_targets_down(res)
                    _export(shipper)
                except Exception as e:  # keep watching; the error is logged and counted
                    shipper.metrics.failures.labels(stage="pass").inc()
                    code = e.code if isinstance(e, ShipperError) else events.error_code(e)
                    shipper.metrics.failure(code)
                    log.error("pass failed: %s", e)
                    events.emit(
                        "pass_failed",
                        str(e),
                        tenant=shipper.cfg.tenant,
                        level=logging.ERROR,
                        code=code,
                    )
                wake.wait(shipper.cfg.poll_interval)
        finally:
            observer.stop()
            observer.join()
    return 0
