"""``binlog-shipper run``: ship closed binlogs (once, watching, or as a dry run)."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from shipper.cli.common import add_config_args, load_config, print_json
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
        return 1 if any(c["status"] == "denied" for c in doc.get("checks", [])) else 0
    shipper = Shipper(cfg)
    try:
        if args.once:
            return _report(shipper.run_once())
        return watch(shipper)
    finally:
        shipper.close()


def _report(res: PassResult) -> int:
    for name in res.shipped:
        print(f"shipped  {name}")
    for name in res.flagged:
        print(f"FLAGGED  {name}: event checksum mismatch; quarantined, not restorable")
    for name in res.gaps:
        print(f"GAP      {name}: purged by the server before it was shipped")
    for name, err in res.failed.items():
        print(f"FAILED   {name}: {err}")
    print(
        f"{len(res.shipped)} shipped, {len(res.already)} already archived, "
        f"{len(res.flagged)} flagged, {len(res.gaps)} gaps, {len(res.failed)} failed"
    )
    return 0 if res.ok else 1


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
    if shipper.cfg.metrics_port:
        shipper.metrics.serve(shipper.cfg.metrics_port)
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
                except Exception as e:  # keep watching; the error is logged and counted
                    shipper.metrics.failures.labels(stage="pass").inc()
                    log.error("pass failed: %s", e)
                wake.wait(shipper.cfg.poll_interval)
        finally:
            observer.stop()
            observer.join()
    return 0
