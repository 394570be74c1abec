"""``binlog-shipper run``: ship closed binlogs (once, watching, or as a dry run)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shipper import events
from shipper.cli.common import add_config_args, load_config, print_json
from shipper.cli.watcher import SETTLE_SECONDS, Wake, say, timestamp_logs, watch_dir
from shipper.errors import ShipperError, StorageError
from shipper.pipeline.parallel import limit_malloc_arenas
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
        limit_malloc_arenas()  # before any worker thread exists
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
    for line in _lines(res):
        print(line, flush=True)
    print(
        f"{len(res.shipped)} shipped, {len(res.already)} already archived, "
        f"{len(res.flagged)} flagged, {len(res.gaps)} gaps, {len(res.failed)} failed"
        + (f", {len(res.blocked)} held back by a target" if res.blocked else "")
    )
    if res.failed or res.flagged or res.gaps:
        return 1
    return StorageError.exit_code if res.targets_down else 0


def _lines(res: PassResult) -> Iterator[str]:
    """One line per thing the pass did that an operator must see."""
    for name in res.shipped:
        yield f"shipped  {name}"
    for url, names in res.backfilled.items():
        yield f"backfill {url}: {len(names)} committed binlog(s) copied ({names[0]}..{names[-1]})"
    for name in res.flagged:
        yield f"FLAGGED  {name}: event checksum mismatch; quarantined, not restorable"
    for name in res.gaps:
        yield f"GAP      {name}: purged by the server before it was shipped"
    for name, err in res.failed.items():
        yield f"FAILED   {name}: {err}"
    # once per target and pass, however many binlogs it held back
    for down in res.targets_down.values():
        yield (
            f"TARGET   {down.url} failed: {down.error}; {down.blocked} binlog(s) not written "
            "to it (kept pending, retried next pass)"
        )


def watch(shipper: Shipper) -> int:
    """Ship whenever the server rotates (watchdog), and every poll_interval anyway."""
    timestamp_logs()
    stop = threading.Event()
    wake = Wake()

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %s: finishing the current pass, then stopping", signum)
        stop.set()
        wake.poke()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    cfg = shipper.cfg
    if cfg.metrics_address:
        shipper.metrics.serve(cfg.metrics_address)
    with shipper.locked():
        state, binlog_dir = shipper.discover()
        observer = watch_dir(binlog_dir, wake)
        say(
            f"watching {binlog_dir} for binlogs of server {state.server_id} "
            f"({state.server_uuid or 'no uuid'}, {state.version}); poll every "
            f"{cfg.poll_interval:g} s; "
            + (
                f"metrics on http://{cfg.metrics_address}/metrics"
                if cfg.metrics_address
                else "metrics off"
            )
            + f"; {cfg.workers} worker(s)"
        )
        try:
            while not stop.is_set():
                active: str | None = None
                try:
                    state, binlog_dir = shipper.discover()
                    active = state.active
                    res = shipper.ship_pass(state, binlog_dir)
                    for line in _lines(res):
                        say(line)
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
                if active is not None and wake.rotation_pending(active):
                    # the server created a binlog it does not report as active yet (the
                    # rotation is still under way): look again in a moment, not at the poll
                    wake.wait(SETTLE_SECONDS)
                else:
                    wake.wait(cfg.poll_interval)
        finally:
            observer.stop()
            observer.join()
    say("stopped")
    return 0
