"""RPO in watch mode: from FLUSH BINARY LOGS to the manifest commit of that binlog.

    .venv/bin/python bench/bench_rpo.py [--rotations 50] [--gap 1.0] [--workers 2]

A throwaway MariaDB takes a steady write load (a thread inserting 100-row
transactions of random text, ``--rate`` rows a second; 256 MiB max binlog
size, so only the FLUSHes rotate). ``binlog-shipper run`` watches it
(its own process, ``poll_interval = 600`` so only file events can wake it,
one ``file://`` target, ``verify = "auto"``: full read-back). ``--rotations``
times, ``--gap`` seconds apart: note the wall time, run ``FLUSH BINARY
LOGS``, then read the manifest (read-only SQLite, every 5 ms) until the
binlog that was active before the FLUSH is committed; the RPO sample is its
``committed_at`` minus the time before the FLUSH was sent. p50, p90, p99 and
the maximum are printed (p99 of 50 samples: nearest rank, i.e. the largest
but none).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shipper.keys.local import LocalKeyring
from shipper.sandbox import SandboxServer


def load(server: SandboxServer, stop: threading.Event, rows: list[int], rate: int) -> None:
    """Insert 100-row transactions at ``rate`` rows/s until ``stop``; ``rows[0]`` counts."""
    server.execute(
        "CREATE DATABASE IF NOT EXISTS app",
        "CREATE TABLE IF NOT EXISTS app.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
        "v VARCHAR(400), ts TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))",
    )
    with contextlib.closing(server.connect()) as conn, conn.cursor() as cur:
        t = time.monotonic()
        while not stop.is_set():
            t += 100 / rate
            time.sleep(max(0.0, t - time.monotonic()))
            cur.execute("BEGIN")
            cur.executemany(
                "INSERT INTO app.t (v) VALUES (%s)", [(os.urandom(100).hex(),) for _ in range(100)]
            )
            cur.execute("COMMIT")
            rows[0] += 100


def committed_at(db: Path, name: str) -> float | None:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
        row = c.execute(
            "SELECT committed_at FROM binlogs WHERE name = ? AND state = 'committed'", (name,)
        ).fetchone()
    return float(row[0]) if row else None


def nearest_rank(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rotations", type=int, default=50)
    ap.add_argument("--gap", type=float, default=1.0, help="seconds between rotations")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rate", type=int, default=2000, help="rows/s of ~200 bytes written")
    args = ap.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    base = Path(tempfile.mkdtemp(prefix="bench-rpo-"))
    # big enough that only our FLUSHes rotate
    server = SandboxServer(base_dir=base / "db", server_id=9, max_binlog_size=256 << 20)
    server.start()
    stop = threading.Event()
    rows = [0]
    writer = threading.Thread(target=load, args=(server, stop, rows, args.rate), daemon=True)
    proc: subprocess.Popen[bytes] | None = None
    try:
        state = base / "state"
        state.mkdir()
        LocalKeyring.create(state / "keyring")
        (state / "config.toml").write_text(f"""
tenant = "rpo"
state_dir = "{state}"
poll_interval = 600
workers = {args.workers}

[mysql]
socket = "{server.socket_path}"
user = "root"

[[targets]]
url = "file://{state / "archive"}"

[[keys]]
provider = "local"
path = "{state / "keyring"}"
""")
        writer.start()
        time.sleep(1.0)
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipper", "run", "--state-dir", str(state)],
            stdout=subprocess.DEVNULL,
        )
        db = state / "manifest.sqlite"
        while not db.exists():
            time.sleep(0.05)
        time.sleep(1.0)  # the start-up pass
        samples: list[float] = []
        sizes: list[int] = []
        started = time.time()
        rows_before = rows[0]
        for _ in range(args.rotations):
            time.sleep(args.gap)
            name, size = server.binary_logs()[-1]
            t0 = time.time()
            server.flush_binary_logs()
            deadline = time.monotonic() + 30
            while (at := committed_at(db, name)) is None:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name} was not committed within 30 s")
                time.sleep(0.005)
            samples.append(at - t0)
            sizes.append(size)
        took = time.time() - started
        print(
            f"{len(samples)} rotations under load ({(rows[0] - rows_before) / took:.0f} rows/s "
            f"of ~200 B, binlogs of {min(sizes) / 1e3:.0f}-{max(sizes) / 1e3:.0f} kB), "
            f"{args.workers} worker(s), file:// target"
        )
        print(
            "FLUSH -> manifest commit: "
            + ", ".join(f"p{p} {nearest_rank(samples, p) * 1000:.0f} ms" for p in (50, 90, 99))
            + f", max {max(samples) * 1000:.0f} ms, min {min(samples) * 1000:.0f} ms "
            "(target p99 <= 1000 ms)"
        )
    finally:
        stop.set()
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        writer.join(timeout=10)
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
