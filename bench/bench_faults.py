"""The shipper's throughput with 20% of requests failing, against the same run without.

    .venv/bin/python bench/bench_faults.py [--binlogs 90] [--mb 8] [--rounds 3]
        [--rate 0.2] [--workers N] [--stall] [--latency MS]

Why 90 binlogs by default: 30 of 8 MB are a 3-second burst on this machine, and
one request that fails 3-4 times in a row near its end (its backoff doubles
each time: up to 2 s before the fifth attempt) is then a third of the run,
whoever the shipper is: that measures the tail of a short batch more than
throughput. 90 (about 9 s) keeps the shipper busy long enough for its
throughput to show; ``--binlogs 30`` is in bench/RESULTS.md as well.

1. A throwaway MariaDB writes ``--binlogs`` closed ROW binlogs of about ``--mb`` MB.
2. A moto server and, in front of it, the fault proxy of
   ``tests/services/faultproxy.py`` each run in their own process. Faults:
   429, 503 and connection resets (half of them after the request was
   forwarded, so a put landed and its answer was lost); ``--stall`` adds stalls
   past the client's 1 s read timeout. ``--latency`` adds that many milliseconds
   to every request at the proxy, faults and clean alike: a region's round
   trip instead of loopback's (moto answers in about a millisecond, which makes
   a backoff sleep weigh far more than it does against a real service).
3. Each round ships every binlog twice, each time with a fresh bucket and state
   dir, by ``binlog-shipper run --once`` processes through the proxy: once with
   no faults (the proxy's own cost is on both sides), once with faults. The
   shipper runs with its defaults (``workers`` = one per CPU, at least 4 and at
   most 8, unless ``--workers``; the default ``[resilience]`` policy). A pass that leaves a
   binlog pending (a call that failed every retry) is followed by another
   pass, as watch mode would do; the time of every pass counts.

Printed: MB/s for each, the number of passes, the CPU seconds the shipper,
moto and the proxy spent on it (the machine is shared by all three: a fault
costs the shipper a backoff and a request again, and costs the emulator and
the proxy the request again too), the faults injected, and the
ratio faults/clean on the median round. The machine's load average is printed
first: the 2 cores are shared.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_parallel import CREDS, config, cpu_seconds, moto_server, run_once, write_binlogs

from shipper.config import default_workers
from shipper.keys.local import LocalKeyring
from shipper.sandbox import SandboxServer

ROOT = Path(__file__).resolve().parents[1]

# the proxy in a process of its own (its threads would otherwise take this
# process's GIL); reads "stats" lines on stdin and answers with the counts
PROXY = """
import json, sys
from tests.services.faultproxy import FaultProxy
upstream, rate, seed, kinds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
latency = float(sys.argv[5])
with FaultProxy(upstream, rate=rate, seed=seed, flavor="s3", stall=2,
                kinds=tuple(kinds.split(",")), latency=latency) as p:
    print(p.url, flush=True)
    for line in sys.stdin:
        print(json.dumps(dict(p.injected)), flush=True)
"""


class Proxy:
    def __init__(
        self, upstream: str, rate: float, seed: int, kinds: tuple[str, ...], latency: float
    ) -> None:
        self.proc = subprocess.Popen(
            [
                *(sys.executable, "-c", PROXY, upstream, str(rate), str(seed)),
                *(",".join(kinds), str(latency)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()

    def injected(self) -> dict[str, int]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        counts: dict[str, int] = json.loads(self.proc.stdout.readline())
        return counts

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def ship_all(cfg: Path, names: list[str]) -> tuple[float, int, float]:
    """``run --once`` until every binlog is committed: (seconds, passes, CPU seconds)."""
    import sqlite3

    spent, passes, cpu = 0.0, 0, 0.0
    while True:
        passes += 1
        code, wall, used, _rss = run_once(cfg)
        spent += wall
        cpu += used
        db = sqlite3.connect(cfg.parent / "manifest.sqlite")
        try:
            done = {n for (n,) in db.execute("SELECT name FROM binlogs WHERE state = 'committed'")}
        finally:
            db.close()
        if set(names) <= done:
            return spent, passes, cpu
        # why this pass left binlogs pending (the failure events it logged)
        for line in cfg.with_name("stderr.log").read_text().splitlines():
            if '"event": "target_down"' in line or '"event": "binlog_failed"' in line:
                print("   pass", passes, ":", json.loads(line)["message"][:300])
        if passes >= 10:
            sys.stderr.write(cfg.with_name("stderr.log").read_text()[-4000:])
            raise SystemExit(f"not every binlog committed after {passes} passes (exit {code})")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--binlogs", type=int, default=90)
    ap.add_argument("--mb", type=float, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=float, default=0.2)
    ap.add_argument("--workers", type=int, default=0, help="0: the shipper's default")
    ap.add_argument("--stall", action="store_true", help="add stalls (1 s timeout) to the mix")
    ap.add_argument("--latency", type=float, default=0, help="ms added to every request")
    args = ap.parse_args()
    kinds = ("429", "503", "reset") + (("stall",) if args.stall else ())
    print(
        f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"{os.cpu_count()} CPUs"
    )
    workers = args.workers or default_workers()
    base = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    server = SandboxServer(base_dir=base / "db", server_id=9, max_binlog_size=256 << 20)
    server.start()
    keyring = base / "keyring"
    LocalKeyring.create(keyring)
    try:
        write_binlogs(server, args.binlogs, args.mb)
        logs = server.binary_logs()[:-1]
        names = [n for n, _ in logs]
        total = sum(s for _, s in logs)
        for name in names:  # warm the page cache for every run alike
            (server.binlog_dir / name).read_bytes()
        results: dict[str, list[tuple[float, int]]] = {"clean": [], "faults": []}
        injected: dict[str, int] = {}
        with moto_server() as (endpoint, moto_pid):
            os.environ.update(CREDS)
            import boto3

            s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
            for r in range(args.rounds):
                order = ["clean", "faults"] if r % 2 == 0 else ["faults", "clean"]
                for kind in order:
                    rate = args.rate if kind == "faults" else 0.0
                    proxy = Proxy(endpoint, rate, r, kinds, args.latency / 1000)
                    try:
                        bucket = f"bench-{r}-{kind}"
                        s3.create_bucket(Bucket=bucket)
                        target = (
                            f's3://{bucket}/arch|endpoint_url = "{proxy.url}"\n'
                            'region = "us-east-1"\nconnect_timeout = 1\nread_timeout = 1'
                        )
                        cfg = config(base / f"state-{r}-{kind}", server, keyring, workers, target)
                        before = cpu_seconds(moto_pid), cpu_seconds(proxy.proc.pid)
                        spent, passes, cpu = ship_all(cfg, names)
                        moto_cpu = cpu_seconds(moto_pid) - before[0]
                        proxy_cpu = cpu_seconds(proxy.proc.pid) - before[1]
                        results[kind].append((spent, passes))
                        if kind == "faults":
                            for k, v in proxy.injected().items():
                                injected[k] = injected.get(k, 0) + v
                    finally:
                        proxy.close()
                    print(
                        f"round {r + 1}, {kind:6s}: {total / spent / 1e6:6.1f} MB/s "
                        f"({spent:5.2f}s, {passes} pass(es)); CPU: shipper {cpu:4.1f}s, "
                        f"moto {moto_cpu:4.1f}s, proxy {proxy_cpu:4.1f}s"
                    )
        clean = statistics.median(s for s, _ in results["clean"])
        faults = statistics.median(s for s, _ in results["faults"])
        print(
            f"workload: {len(names)} binlogs, {total / 1e6:.1f} MB, {workers} worker(s), "
            f"{args.rounds} rounds, fault kinds {', '.join(kinds)} at {args.rate:.0%}, "
            f"{args.latency:g} ms added per request"
        )
        print(f"no faults : {total / clean / 1e6:7.1f} MB/s  ({clean:.2f}s median)")
        print(
            f"{args.rate:.0%} faults: {total / faults / 1e6:7.1f} MB/s  ({faults:.2f}s median; "
            f"injected over all rounds: {injected})"
        )
        print(f"ratio faults/clean: {clean / faults:.2f}   (target >= 0.7)")
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
