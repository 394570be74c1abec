"""Ordered parallel workers: 1 vs 2 workers to moto S3, and peak RSS with 4 workers.

    .venv/bin/python bench/bench_parallel.py [--binlogs 32] [--mb 8] [--rounds 2]
        [--big 4] [--big-mb 1024] [--big-target s3|file]

1. A throwaway MariaDB writes ``--binlogs`` closed ROW binlogs of about ``--mb``
   MB each (server-side INSERT ... SELECT of random text).
2. A moto server (its own process) serves S3. For each round, and for 1 then 2
   workers, a fresh ``binlog-shipper run --once`` process ships all of them to
   a fresh bucket (scan + CRC, stage, zstd -3, AES-256-GCM, multipart/single
   PUT with SHA-256, prefix verify, index, commit). Printed side by side: wall
   time, MB/s, the shipper's CPU seconds (user+sys from wait4) and CPU use
   (CPU / wall: 1.0 = one core busy), moto's CPU seconds, and the ratio, twice:
   on the process's wall time, and on the pass alone (first discovery to last
   commit in the manifest: without the interpreter's start-up, imports and
   clients, which cost the same whatever the worker count).
   ``--breakdown``: then once more in this process, one worker, timing each
   stage (wall and CPU time), to show where a single worker's time goes.
3. ``--big`` binlogs of ``--big-mb`` MiB are shipped by one process with 4
   workers; its peak RSS (ru_maxrss from wait4) is printed.

The machine's load average is printed first: the 2 cores are shared.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shipper.keys.local import LocalKeyring
from shipper.sandbox import SandboxServer

CREDS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_binlogs(server: SandboxServer, n: int, mb: float) -> None:
    """``n`` closed binlogs of about ``mb`` MB each."""
    server.execute(
        "CREATE DATABASE IF NOT EXISTS app",
        "CREATE TABLE IF NOT EXISTS app.big (id BIGINT AUTO_INCREMENT PRIMARY KEY, v TEXT)",
    )
    target = int(mb * 1e6)
    step = min(200_000, max(1000, target // 215))
    for _ in range(n):
        before = len(server.binary_logs())
        while True:
            logs = server.binary_logs()
            if len(logs) > before:
                break  # the server rotated by itself at max_binlog_size
            if logs[-1][1] >= target:
                server.flush_binary_logs()
                break
            server.execute(
                "INSERT INTO app.big (v) SELECT CONCAT_WS(' ', MD5(RAND()), MD5(RAND()), "
                "MD5(RAND()), 'row', seq, MD5(RAND()), MD5(RAND()), MD5(RAND())) "
                f"FROM app.seq_1_to_{step}"
            )


@contextlib.contextmanager
def moto_server() -> Iterator[tuple[str, int]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **CREDS},
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            break
        time.sleep(0.1)
    try:
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def config(state: Path, server: SandboxServer, keyring: Path, workers: int, target: str) -> Path:
    state.mkdir(parents=True)
    path = state / "config.toml"
    path.write_text(f"""
tenant = "bench"
state_dir = "{state}"
workers = {workers}

[mysql]
socket = "{server.socket_path}"
user = "root"

[routing]
primary = "{"aws" if target.startswith("s3://") else "local"}"

[[targets]]
url = "{target.split("|")[0]}"
{target.split("|")[1] if "|" in target else ""}

[[keys]]
provider = "local"
path = "{keyring}"
""")
    return path


def run_once(cfg: Path) -> tuple[int, float, float, float]:
    """Run one ``run --once`` process: (exit code, wall s, CPU s, peak RSS MiB). Its
    stderr (JSON event lines) is appended to ``stderr.log`` beside the config."""
    t = time.perf_counter()
    with cfg.with_name("stderr.log").open("ab") as errf:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipper", "run", "--once", "--config", str(cfg)],
            stdout=subprocess.DEVNULL,
            stderr=errf,
            env={**os.environ, **CREDS},
        )
        _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    return code, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def ship(cfg: Path) -> tuple[float, float, float]:
    """``run --once`` that must succeed: (wall s, CPU s, peak RSS MiB)."""
    code, wall, cpu, rss = run_once(cfg)
    if code != 0:
        sys.stderr.write(cfg.with_name("stderr.log").read_text()[-4000:])
        raise SystemExit(f"run --once exited {code} for {cfg}")
    return wall, cpu, rss


def shipping_seconds(state: Path) -> float:
    """First discovery to last commit, from the manifest: the pass itself, without the
    interpreter's start-up and imports (the same for any number of workers)."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(state / "manifest.sqlite")) as db:
        first, last = db.execute(
            "SELECT MIN(discovered_at), MAX(committed_at) FROM binlogs"
        ).fetchone()
    return float(last - first)


def s3_target(endpoint: str, bucket: str) -> str:
    import boto3

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    return f's3://{bucket}/arch|endpoint_url = "{endpoint}"\nregion = "us-east-1"'


def breakdown(cfg_path: Path) -> None:
    """Ship in this process with one worker, timing each stage: wall time and the
    thread's CPU time inside it (wall - CPU = waiting: network, disk, fsync, the CPU
    taken by other processes). Wrapping our functions is fine in a benchmark."""
    import threading

    from shipper import config as config_mod
    from shipper.manifest import Manifest
    from shipper.pipeline import binlog_job as job_mod
    from shipper.pipeline import ship as ship_mod
    from shipper.pipeline import upload as upload_mod

    totals: dict[str, list[float]] = {}
    lock = threading.Lock()
    depth = threading.local()

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **kw: Any) -> Any:
            outer = getattr(depth, "n", 0) == 0
            depth.n = getattr(depth, "n", 0) + 1
            w, c = time.perf_counter(), time.thread_time()
            try:
                return fn(*a, **kw)
            finally:
                depth.n -= 1
                if outer:
                    with lock:
                        t = totals.setdefault(name, [0.0, 0.0])
                        t[0] += time.perf_counter() - w
                        t[1] += time.thread_time() - c

        return wrapper

    job_mod.scan_file = timed("scan (SHA-256 + CRC32 + index)", job_mod.scan_file)
    for name, attr in (("seal (zstd + AES-GCM)", "seal"), ("verify (prefix)", "verify")):
        setattr(upload_mod.ObjectWriter, attr, timed(name, getattr(upload_mod.ObjectWriter, attr)))
    upload_mod._put = timed("put (S3 PUT / multipart)", upload_mod._put)
    upload_mod.ObjectWriter.put_index = timed(
        "index (seal + PUT)", upload_mod.ObjectWriter.put_index
    )
    for m in ("advance", "place", "discover", "journal", "record_attempt"):
        setattr(Manifest, m, timed("manifest writes (fsync)", getattr(Manifest, m)))
    ship_mod.read_state = timed("discover (MariaDB)", ship_mod.read_state)
    cfg = config_mod.load(cfg_path)
    shipper = ship_mod.Shipper(cfg)
    w, c = time.perf_counter(), time.process_time()
    res = shipper.run_once()
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    shipper.close()
    assert res.ok, res
    print(f"breakdown, 1 worker in-process: {wall:.2f}s wall, {cpu:.2f}s CPU (process)")
    for name, (tw, tc) in sorted(totals.items(), key=lambda kv: -kv[1][0]):
        print(f"  {name:34s} {tw:6.2f}s wall {100 * tw / wall:5.1f}%   {tc:6.2f}s CPU")


def throughput(base: Path, n: int, mb: float, rounds: int, breakdown_too: bool) -> None:
    server = SandboxServer(base_dir=base / "db", server_id=7, max_binlog_size=256 << 20)
    server.start()
    keyring = base / "keyring"
    LocalKeyring.create(keyring)
    try:
        t = time.perf_counter()
        write_binlogs(server, n, mb)
        logs = server.binary_logs()[:-1]
        total = sum(s for _, s in logs)
        print(
            f"workload: {len(logs)} closed binlogs, {total / 1e6:.1f} MB "
            f"in {time.perf_counter() - t:.1f}s"
        )
        for name, _ in logs:  # warm the page cache for every run alike
            (server.binlog_dir / name).read_bytes()
        walls: dict[int, list[float]] = {1: [], 2: []}
        passes: dict[int, list[float]] = {1: [], 2: []}
        with moto_server() as (endpoint, moto_pid):
            os.environ.update(CREDS)
            for r in range(rounds):
                for workers in (1, 2):
                    target = s3_target(endpoint, f"bench-{r}-{workers}")
                    cfg = config(base / f"state-{r}-{workers}", server, keyring, workers, target)
                    moto_before = cpu_seconds(moto_pid)
                    wall, cpu, rss = ship(cfg)
                    moto_cpu = cpu_seconds(moto_pid) - moto_before
                    walls[workers].append(wall)
                    passes[workers].append(shipping_seconds(cfg.parent))
                    print(
                        f"round {r + 1}, {workers} worker(s): {total / wall / 1e6:6.1f} MB/s "
                        f"({wall:5.2f}s; the pass alone {passes[workers][-1]:5.2f}s); "
                        f"shipper CPU {cpu:5.2f}s = {cpu / wall:.2f} cores; "
                        f"moto CPU {moto_cpu:5.2f}s; together {(cpu + moto_cpu) / wall:.2f} "
                        f"cores; peak RSS {rss:.0f} MiB"
                    )
            if breakdown_too:
                target = s3_target(endpoint, "bench-breakdown")
                breakdown(config(base / "state-breakdown", server, keyring, 1, target))
        one, two = statistics.median(walls[1]), statistics.median(walls[2])
        print(
            f"median, process wall: 1 worker {total / one / 1e6:.1f} MB/s, 2 workers "
            f"{total / two / 1e6:.1f} MB/s; ratio 2/1 = {one / two:.2f} (target >= 1.6)"
        )
        one, two = statistics.median(passes[1]), statistics.median(passes[2])
        print(
            f"median, the pass alone (first discovery -> last commit): 1 worker "
            f"{total / one / 1e6:.1f} MB/s, 2 workers {total / two / 1e6:.1f} MB/s; "
            f"ratio 2/1 = {one / two:.2f} (target >= 1.6)"
        )
        # on a shared machine other jobs only ever slow a run down: the best round of
        # each is the closest to what the code does alone
        for what, runs in (("process wall", walls), ("the pass alone", passes)):
            one, two = min(runs[1]), min(runs[2])
            print(
                f"best of {rounds}, {what}: 1 worker {total / one / 1e6:.1f} MB/s, 2 workers "
                f"{total / two / 1e6:.1f} MB/s; ratio 2/1 = {one / two:.2f} (target >= 1.6)"
            )
    finally:
        server.stop()


def big_rss(base: Path, n: int, mb: int, kind: str) -> None:
    server = SandboxServer(base_dir=base / "db-big", server_id=8, max_binlog_size=1 << 30)
    server.start()
    keyring = base / "keyring-big"
    LocalKeyring.create(keyring)
    try:
        t = time.perf_counter()
        write_binlogs(server, n, mb * 2**20 / 1e6)
        logs = server.binary_logs()[:-1]
        print(
            f"big workload: {len(logs)} binlogs of "
            f"{', '.join(f'{s / 2**20:.0f}' for _, s in logs)} MiB in "
            f"{time.perf_counter() - t:.0f}s"
        )
        with moto_server() as (endpoint, _pid):
            os.environ.update(CREDS)
            state = base / "state-big"
            target = (
                s3_target(endpoint, "bench-big") if kind == "s3" else f"file://{state / 'archive'}"
            )
            cfg = config(state, server, keyring, 4, target)
            wall, cpu, rss = ship(cfg)
        total = sum(s for _, s in logs)
        print(
            f"4 workers, {len(logs)} x ~{mb} MiB to {kind}: {total / wall / 1e6:.1f} MB/s "
            f"({wall:.1f}s), CPU {cpu:.1f}s, peak RSS {rss:.1f} MiB (target <= 300 MB)"
        )
    finally:
        server.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binlogs", type=int, default=32)
    ap.add_argument("--mb", type=float, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--big", type=int, default=4, help="1 GiB binlogs for the RSS case (0: skip)")
    ap.add_argument("--big-mb", type=int, default=1024)
    ap.add_argument("--big-target", choices=("s3", "file"), default="s3")
    ap.add_argument("--breakdown", action="store_true", help="time each stage, 1 worker")
    args = ap.parse_args()
    print(
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"{os.cpu_count()} CPUs"
    )
    base = Path(tempfile.mkdtemp(prefix="bench-parallel-"))
    try:
        if args.binlogs:
            throughput(base, args.binlogs, args.mb, args.rounds, args.breakdown)
        if args.big:
            big_rss(base, args.big, args.big_mb, args.big_target)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
