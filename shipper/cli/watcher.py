"""What wakes ``run``'s watch loop: a rotation seen by inotify (watchdog), or the poll.

A rotation creates the next binlog file and then updates the index file; both
wake the loop. Writes to the active binlog do not: under load it grows with
every transaction, and a pass per write would only re-read the server's state.
A burst of events (create, index write, the old file's last write) is
coalesced for ``DEBOUNCE_SECONDS`` before the pass starts, far below the one
second the pipeline aims for from rotation to commit.

When a pass finds that the server does not report a binlog the watcher saw
created as active yet (the rotation is still under way), the loop looks again
after ``SETTLE_SECONDS`` instead of waiting for the poll; a name the server
never reports (a stray file) stops counting after ``SETTLE_GIVE_UP`` seconds.

Every line ``run`` prints while watching starts with an RFC 3339 UTC time.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

DEBOUNCE_SECONDS = 0.05
SETTLE_SECONDS = 0.05
SETTLE_GIVE_UP = 5.0

#: a binlog data file: stem, dot, sequence digits (mysql-bin.000042)
_BINLOG = re.compile(r"(?P<stem>.+)\.(?P<seq>\d+)")


def rfc3339(t: float | None = None) -> str:
    """``t`` (default: now) as RFC 3339 UTC with milliseconds: 2026-12-01T16:50:01.123Z."""
    dt = datetime.fromtimestamp(time.time() if t is None else t, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def say(line: str) -> None:
    """Print one line of watch-mode output, timestamped."""
    print(f"{rfc3339()} {line}", flush=True)


class _Rfc3339Formatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return rfc3339(record.created)


def timestamp_logs() -> None:
    """Make the log lines of this process start with an RFC 3339 UTC time too."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(_Rfc3339Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))


class Wake:
    """Set by file events (from watchdog's thread), waited on by the watch loop."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        #: binlog names seen created -> when, until the server reports them active
        self._created: dict[str, float] = {}

    def poke(self) -> None:
        self._event.set()

    def created(self, name: str) -> None:
        with self._lock:
            self._created.setdefault(name, time.monotonic())
        self._event.set()

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` for an event, then let the rest of its burst arrive.
        Events during the pass that follows wake the next wait at once."""
        if self._event.wait(timeout):
            time.sleep(DEBOUNCE_SECONDS)
        self._event.clear()

    def rotation_pending(self, active: str) -> bool:
        """Whether a binlog seen created is still newer than the server's ``active``."""
        m = _BINLOG.fullmatch(active)
        now = time.monotonic()
        with self._lock:
            for name, seen in list(self._created.items()):
                c = _BINLOG.fullmatch(name)
                done = (
                    m is None
                    or c is None
                    or c["stem"] != m["stem"]
                    or int(c["seq"]) <= int(m["seq"])
                    or now - seen > SETTLE_GIVE_UP
                )
                if done:
                    del self._created[name]
            return bool(self._created)


class _Handler(FileSystemEventHandler):
    def __init__(self, wake: Wake) -> None:
        self.wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type in ("opened", "closed_no_write"):
            return
        name = os.path.basename(os.fsdecode(event.dest_path or event.src_path))
        if _BINLOG.fullmatch(name):
            if event.event_type in ("created", "moved"):
                self.wake.created(name)
                return
            if event.event_type in ("modified", "closed"):
                return  # the active binlog growing: not a rotation
        self.wake.poke()  # the index file, a purge (deleted), anything else


def watch_dir(binlog_dir: Path, wake: Wake) -> BaseObserver:
    """Start watching ``binlog_dir`` (not recursively); the caller stops the observer."""
    observer = Observer()
    observer.schedule(_Handler(wake), str(binlog_dir), recursive=False)
    observer.start()
    return observer
