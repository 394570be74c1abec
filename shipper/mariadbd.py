"""Running a private mariadbd: start it, wait until it answers, stop it cleanly.

Shared by the throwaway server of the demo and tests (:mod:`shipper.sandbox`)
and the server a restore rebuilds (:mod:`shipper.restore.server`); each brings
its own options and its own readiness probe.

A server outlives the process that started it when that process is killed
(SIGKILL, OOM): :func:`record` writes its pid and datadir to a file, and
:func:`stop_recorded` lets the next run find it and stop it cleanly before
using the datadir again (else: "Can't lock aria control file").
"""

from __future__ import annotations

import json
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


def record(path: Path, proc: subprocess.Popen[bytes], datadir: Path, run_dir: Path) -> None:
    """Note which server runs on ``datadir`` (temp + rename: never a half-written file)."""
    tmp = path.with_name(path.name + ".tmp")
    doc = {"pid": proc.pid, "datadir": str(datadir), "run_dir": str(run_dir)}
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
    tmp.replace(path)


def stop_recorded(path: Path, timeout: float = 120.0) -> dict[str, str] | None:
    """Stop the server :func:`record` noted in ``path``, if it still runs; remove ``path``.

    A pid is only signalled when that process is a mariadbd whose command line
    names the recorded datadir: after a reboot the pid may belong to anything.
    SIGTERM first (a clean shutdown keeps the datadir usable), SIGKILL after
    ``timeout``. Returns what was recorded, and ``stopped`` ("yes" when it was
    still running), or None when there was no record.
    """
    try:
        doc = json.loads(path.read_text())
        pid, datadir = int(doc["pid"]), str(doc["datadir"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        path.unlink(missing_ok=True)  # torn or foreign: nothing we can trust to signal
        return None
    stopped = _runs_on(pid, datadir)
    if stopped:
        _signal(pid, signal.SIGTERM, path)
        deadline = time.monotonic() + timeout
        while _runs_on(pid, datadir) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _runs_on(pid, datadir):
            _signal(pid, signal.SIGKILL, path)
            while _runs_on(pid, datadir):
                time.sleep(0.1)
    path.unlink(missing_ok=True)
    return {
        "pid": str(pid),
        "datadir": datadir,
        "run_dir": str(doc.get("run_dir", "")),
        "stopped": "yes" if stopped else "",
    }


def _signal(pid: int, sig: int, record: Path) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass  # it exited in the meantime
    except PermissionError as e:
        raise ShipperError(
            f"mariadbd (pid {pid}, recorded in {record}) still runs on its datadir but "
            f"belongs to another user: stop it as that user, then run again"
        ) from e


def _runs_on(pid: int, datadir: str) -> bool:
    """Is ``pid`` a live (not zombie) process with ``--datadir=datadir`` on its command line?"""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z" and f"--datadir={datadir}".encode() in argv


def log_tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return "(no error log)"
