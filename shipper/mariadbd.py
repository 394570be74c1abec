"""Running a private mariadbd: start it, wait until it answers, stop it cleanly.

Shared by the throwaway server of the demo and tests (:mod:`shipper.sandbox`)
and the server a restore rebuilds (:mod:`shipper.restore.server`); each brings
its own options and its own readiness probe.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from shipper.errors import ShipperError


def spawn(cmd: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start mariadbd (as root it needs ``--user=root``, added here)."""
    args = list(cmd)
    if os.geteuid() == 0:
        args.append("--user=root")
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_ready(
    proc: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    timeout: float,
    log_path: Path,
    what: str,
    error: type[ShipperError],
) -> None:
    """Poll ``ready()`` until it is true; raise ``error`` with the log's tail if the
    server exits or does not answer in ``timeout`` seconds (then it is stopped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise error(
                f"mariadbd on {what} exited at start; see {log_path}:\n" + log_tail(log_path)
            )
        if ready():
            return
        time.sleep(0.1)
    terminate(proc)
    raise error(f"mariadbd on {what} did not answer in {timeout}s:\n" + log_tail(log_path))


def terminate(proc: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    """SIGTERM: a clean shutdown (InnoDB flushed, the binlog closed with its STOP event)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def log_tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return "(no error log)"
