"""Pipeline throughput vs the C tools, and peak RSS on a 1 GiB binlog.

    .venv/bin/python bench/bench_ship.py [--mb 320] [--big-mb 1024]

1. A throwaway MariaDB writes >= 256 MB of real ROW binlogs (a write-heavy
   workload: multi-row INSERTs of random text, then UPDATEs of the same rows).
2. Our pipeline ships them to file:// with one worker (scan + CRC check,
   stage, zstd -3, AES-256-GCM, fsync, read-back verify, commit), timed.
3. Side by side, in this script, the C tools do the same work on the same
   files: `zstd -3 -T1`, `openssl enc -aes-256-ctr`, `sha256sum`, chained
   as one pipe per file (three processes, so they get both cores; ours gets one).
4. A fresh shipper process ships a single ~1 GiB binlog; its peak RSS
   (ru_maxrss from wait4) is printed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shipper import config as config_mod
from shipper.config import MySQLConfig
from shipper.keys.local import LocalKeyring
from shipper.pipeline.ship import Shipper
from shipper.sandbox import SandboxServer


def workload(server: SandboxServer, mb: int) -> None:
    server.execute(
        "CREATE DATABASE IF NOT EXISTS bench",
        "CREATE TABLE IF NOT EXISTS bench.orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
        "customer INT, status VARCHAR(16), note VARCHAR(512), amount DECIMAL(12,2), "
        "created TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))",
    )
    target = mb << 20
    while sum(s for _, s in server.binary_logs()) < target:
        server.execute(
            "INSERT INTO bench.orders (customer, status, note, amount) "
            "SELECT FLOOR(RAND()*100000), ELT(1+FLOOR(RAND()*4),'new','paid','shipped','void'), "
            "CONCAT_WS(' ', MD5(RAND()), 'order for customer', FLOOR(RAND()*1000), MD5(RAND()), "
            "REPEAT('x', FLOOR(RAND()*64))), RAND()*1000 FROM bench.seq_1_to_20000",
            "UPDATE bench.orders SET status='paid', amount=amount+1 "
            "WHERE id > (SELECT MAX(id) - 10000 FROM bench.orders)",
        )
    server.flush_binary_logs()


def make_config(state: Path, server: SandboxServer) -> config_mod.Config:
    state.mkdir(parents=True)
    LocalKeyring.create(state / "keyring")
    text = config_mod.render_default(
        state,
        tenant="bench",
        mysql=MySQLConfig(socket=str(server.socket_path)),
        archive_url=f"file://{state / 'archive'}",
        keyring=state / "keyring",
    )
    (state / "config.toml").write_text(text)
    return config_mod.load(state / "config.toml")


def c_tools(files: list[Path], out_dir: Path) -> float:
    key, iv = "00" * 32, "00" * 16
    t = time.perf_counter()
    for f in files:
        cmd = (
            f"zstd -3 -T1 -q -c {f} | openssl enc -aes-256-ctr -K {key} -iv {iv} "
            f"> {out_dir / f.name}.zst.enc && sha256sum {f} > /dev/null"
        )
        subprocess.run(cmd, shell=True, check=True)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=320)
    ap.add_argument("--big-mb", type=int, default=1024)
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-ship-"))
    try:
        server = SandboxServer(base_dir=base / "db", server_id=5, max_binlog_size=64 << 20)
        server.start()
        try:
            t = time.perf_counter()
            workload(server, args.mb)
            logs = server.binary_logs()[:-1]
            total = sum(s for _, s in logs)
            print(
                f"workload: {len(logs)} closed binlogs, {total / 1e6:.1f} MB "
                f"in {time.perf_counter() - t:.1f}s"
            )
            files = [server.binlog_dir / n for n, _ in logs]
            for f in files:  # warm the page cache for both contenders
                f.read_bytes()
            cfg = make_config(base / "state", server)
            shipper = Shipper(cfg)
            t = time.perf_counter()
            res = shipper.run_once()
            ours = time.perf_counter() - t
            shipper.close()
            assert res.ok and len(res.shipped) == len(files), res
            (base / "c").mkdir()
            theirs = c_tools(files, base / "c")
            ours_mbs, theirs_mbs = total / ours / 1e6, total / theirs / 1e6
            print(
                f"ours  (scan+CRC, stage, zstd-3, AES-GCM, fsync, verify, commit): "
                f"{ours_mbs:7.1f} MB/s  ({ours:.2f}s)"
            )
            print(
                f"C     (zstd -3 -T1 | openssl aes-256-ctr ; sha256sum):          "
                f"{theirs_mbs:7.1f} MB/s  ({theirs:.2f}s)"
            )
            print(f"ratio ours/C: {ours_mbs / theirs_mbs:.2f}   (target >= 0.7)")
            sealed = sum(p.stat().st_size for p in (base / "state" / "archive").rglob("*.zst.enc"))
            print(f"archive size: {sealed / 1e6:.1f} MB ({total / sealed:.2f}x compression)")
        finally:
            server.stop()
        if args.big_mb:
            big_rss(base, args.big_mb)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


def big_rss(base: Path, mb: int) -> None:
    server = SandboxServer(base_dir=base / "db-big", server_id=6, max_binlog_size=1 << 30)
    server.start()
    try:
        workload(server, mb)
        name, size = max(server.binary_logs()[:-1], key=lambda nv: nv[1])
        cfg = make_config(base / "state-big", server)
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipper", "run", "--once", "--config", str(cfg.path)],
            stdout=subprocess.DEVNULL,
        )
        t = time.perf_counter()
        _pid, status, usage = os.wait4(proc.pid, 0)
        took = time.perf_counter() - t
        print(
            f"1 GiB case: one process shipped {name} ({size / 2**20:.0f} MiB) in {took:.1f}s, exit "
            f"{os.waitstatus_to_exitcode(status)}, peak RSS {usage.ru_maxrss / 1024:.1f} MiB "
            f"(target <= 150 MB)"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
