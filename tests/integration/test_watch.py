"""``run`` in watch mode against a real MariaDB: a rotation ships without waiting for
the poll, the output says what it watches, and every line carries an RFC 3339 UTC time."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from shipper.manifest import Manifest
from shipper.sandbox import SandboxServer
from tests.helpers import closed_binlogs, rotate, write_config

pytestmark = pytest.mark.mariadb

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"


class Lines:
    """A subprocess's stdout, line by line, read in a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.q: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        out = proc.stdout
        threading.Thread(target=lambda: [self.q.put(line) for line in out], daemon=True).start()

    def wait_for(self, pattern: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.q.get(timeout=left).rstrip("\n")
            except queue.Empty:
                break
            self.seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r} in {timeout}s; got {self.seen}")


def test_watch_ships_a_rotation_long_before_the_poll(
    mariadb_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    server: SandboxServer = mariadb_factory(server_id=41)
    rotate(server, 2, rows=20)
    state = tmp_path / "state"
    # the poll is 10 minutes away: only the file events can ship within the test
    write_config(state, server, tenant="watch", extra="poll_interval = 600\nworkers = 2")
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipper", "run", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out = Lines(proc)
        start = out.wait_for("watching ")
        assert re.fullmatch(
            rf"{STAMP} watching {re.escape(str(server.binlog_dir))} for binlogs of server 41 "
            r"\(.+\); poll every 600 s; metrics off; 2 worker\(s\)",
            start,
        ), start
        for name in closed_binlogs(server):
            out.wait_for(rf"shipped  {re.escape(name)}$")  # the first pass
        for _ in range(3):
            server.write_rows("demo.t", rows=50)
            server.flush_binary_logs()
            name = closed_binlogs(server)[-1]
            out.wait_for(rf"^{STAMP} shipped  {re.escape(name)}$")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        out.wait_for(rf"^{STAMP} stopped$")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.stderr is not None
    stderr = proc.stderr.read()
    assert "Traceback" not in stderr, stderr
    assert all(re.match(STAMP + " ", line) for line in out.seen), out.seen
    with Manifest(state / "manifest.sqlite") as m:
        assert {r.name: r.state for r in m.all()} == dict.fromkeys(
            closed_binlogs(server), "committed"
        )
