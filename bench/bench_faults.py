"""Throughput with 20% of requests failing, against the same path with no faults.

    .venv/bin/python bench/bench_faults.py [--files 30] [--mb 8] [--rounds 3] [--stall]

Uploads a set of envelope-sized files (incompressible) to a moto server in its
own process, the way the shipper does per binlog: a conditional ``put``, a
``stat`` and a ranged read of the first 64 KiB (the "prefix" verify), through
``open_backend`` (so through the retry wrapper, default ``[resilience]``
policy but 8 attempts: full jitter from 0.25 s) and the fault proxy of
``tests/services/faultproxy.py`` in both cases, so the proxy's own cost is on
both sides. Faults: 429, 503 and connection resets (half of them after the
request was forwarded, so a put landed and its answer was lost: the retry then
meets PreconditionFailed, as in the shipper, and counts as done); ``--stall``
adds stalls past the client's 1 s read timeout to the mix. Rounds alternate
the order; the median round is reported.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shipper.errors import PreconditionFailed  # noqa: E402
from shipper.resilience import ResilienceConfig  # noqa: E402
from shipper.storage import open_backend  # noqa: E402
from shipper.storage.factory import resilient  # noqa: E402
from tests.services.cloud import _wait_http, free_port  # noqa: E402
from tests.services.faultproxy import FaultProxy  # noqa: E402

MiB = 1 << 20
# The default policy but 8 attempts: at 20% faults, 5 attempts all fail once in
# ~3000 calls, and the shipper would then retry in its next pass; the bench has no
# next pass
POLICY = ResilienceConfig(retry_attempts=8)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=30)
    ap.add_argument("--mb", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rate", type=float, default=0.2)
    ap.add_argument("--base", type=float, default=POLICY.retry_base, help="resilience.retry_base")
    ap.add_argument("--stall", action="store_true", help="add stalls (1 s timeout) to the mix")
    args = ap.parse_args()
    kinds: tuple[str, ...] = ("429", "503", "reset") + (("stall",) if args.stall else ())

    os.environ.update({"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"})
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/moto-api/", proc)
        with tempfile.TemporaryDirectory() as d:
            files = []
            for i in range(args.files):
                p = Path(d) / f"mysql-bin.{i + 1:06d}.zst.enc"
                p.write_bytes(os.urandom(args.mb * MiB))
                files.append(p)
            results: dict[str, list[float]] = {"clean": [], "faults": []}
            injected = 0
            for r in range(args.rounds):
                order = ["clean", "faults"] if r % 2 == 0 else ["faults", "clean"]
                for name in order:
                    rate = args.rate if name == "faults" else 0.0
                    with FaultProxy(url, rate=rate, seed=r, kinds=kinds, stall=2) as proxy:
                        results[name].append(_round(url, proxy.url, files, args.base))
                        injected += sum(proxy.injected.values()) if name == "faults" else 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    total = args.files * args.mb * MiB / 1e6
    clean = statistics.median(results["clean"])
    faults = statistics.median(results["faults"])
    print(
        f"workload: {args.files} x {args.mb} MiB, put + stat + 64 KiB ranged read each, "
        f"{args.rounds} rounds, fault kinds {', '.join(kinds)} at {args.rate:.0%}, "
        f"retry_base {args.base}"
    )
    print(f"no faults : {total / clean:7.1f} MB/s  ({clean:.2f}s)")
    print(f"20% faults: {total / faults:7.1f} MB/s  ({faults:.2f}s, {injected} faults injected)")
    print(f"ratio faults/clean: {clean / faults:.2f}   (target >= 0.7)")


def _round(moto: str, endpoint: str, files: list[Path], base: float) -> float:
    from boto3.session import Session

    bucket = "bench-" + uuid.uuid4().hex[:8]
    Session().client("s3", region_name="us-east-1", endpoint_url=moto).create_bucket(Bucket=bucket)
    backend = open_backend(
        f"s3://{bucket}/p",
        {
            "endpoint_url": endpoint,
            "region": "us-east-1",
            "connect_timeout": 1,
            "read_timeout": 1,
            "multipart_threshold": 64 * MiB,
        },
        wrappers=resilient(dataclasses.replace(POLICY, retry_base=base)),
    )
    t = time.perf_counter()
    for p in files:
        # a put whose answer was lost did land: the shipper verifies what is there next
        with p.open("rb") as f, contextlib.suppress(PreconditionFailed):
            backend.put(p.name, f, size=p.stat().st_size, metadata={"binlog_name": p.name})
        backend.stat(p.name)
        with backend.open(p.name, 0, 64 << 10) as r:
            assert len(r.read()) == 64 << 10
    elapsed = time.perf_counter() - t
    return elapsed


if __name__ == "__main__":
    main()
