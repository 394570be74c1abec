"""`restore plan --from s3://...` on a fresh machine: first (cold) and cached plan.

    .venv/bin/python bench/bench_plan.py [--binlogs 2000] [--rounds 3]

Puts ``--binlogs`` binlog objects, each with its transaction index, and one
base backup (data object + record) on a moto server (its own process), written
the way the shipper writes them (``tests/synthetic_archive.py``: the shipper's
header and metadata; stand-in plaintext of 2 KiB, since the planner never reads
a binlog's body). The backup sits at the second binlog, so a plan to
``latest`` replays the whole archive: the worst case for the chain and the
existence check.

Then, on a state dir holding only a config and the keyring, it plans to
``latest`` exactly as ``binlog-shipper restore plan --from`` does
(``open_source`` + ``ArchiveCatalog`` + ``make_plan``), first with an empty
catalog cache, then again with the cache the first plan wrote. Requests are
counted on the client (a botocore ``before-send`` hook: every HTTP request,
list pages included). Each round uses a fresh state dir; the median is
reported. Finally ``binlog-shipper restore plan --from`` itself runs twice in a
subprocess (cold, warm), for the wall time a user sees.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.services.cloud import _wait_http, free_port  # noqa: E402

T0 = 1_790_000_000  # 2026-09-21T...Z
TENANT = "bench"
SID = 7


def archive_rows(n: int) -> tuple[list[Any], dict[str, Any], Any]:
    from shipper.binlog.index import TransactionIndex
    from shipper.restore.model import ArchivedBinlog, BackupInfo

    rows, idxs, seq = [], {}, 0
    for k in range(1, n + 1):
        name = f"mysql-bin.{k:06d}"
        first = T0 + 60 * k
        idx = TransactionIndex("mariadb")
        prev = f"0-{SID}-{seq}" if seq else ""
        for j in range(4):
            seq += 1
            idx.append(
                256 + 100 * j, 356 + 100 * j, (first + 10 * j + 1) * 1_000_000, f"0-{SID}", seq
            )
        idxs[name] = idx
        rows.append(
            ArchivedBinlog(
                name=name,
                state="committed",
                server_id=SID,
                first_ts=first,
                last_ts=first + 31,
                gtid_previous=prev,
                gtid_end=f"0-{SID}-{seq}",
                size=2048,
                server_uuid="",
            )
        )
    backup = BackupInfo(
        id="b1",
        tool="mariabackup",
        binlog_file="mysql-bin.000002",
        binlog_pos=356,
        gtid_set=f"0-{SID}-5",
        consistent_at=T0 + 130,
    )
    return rows, idxs, backup


def fill(s3: Any, bucket: str, keyring: Any, n: int) -> float:
    from shipper.storage.s3 import S3Backend
    from tests.synthetic_archive import put_backup, put_binlog

    store = S3Backend(bucket, "archive", client=s3)
    rows, idxs, backup = archive_rows(n)
    t = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda r: put_binlog(store, [keyring], r, idxs[r.name], tenant=TENANT), rows))
    put_backup(store, [keyring], backup, tenant=TENANT, server_id=SID)
    return time.perf_counter() - t


def write_config(state: Path, url: str, endpoint: str, keyring: Path) -> None:
    state.mkdir(parents=True)
    (state / "config.toml").write_text(f"""
tenant = "{TENANT}"
state_dir = "{state}"

[mysql]
socket = "{state / "no-server.sock"}"

[[targets]]
url = "{url}"
endpoint_url = "{endpoint}"
region = "us-east-1"

[[keys]]
provider = "local"
path = "{keyring}"
""")


def plan_once(state: Path, url: str, workers: int) -> tuple[float, int, Counter[str], int]:
    """(seconds, HTTP requests, catalog counters, binlogs in the plan), as the CLI plans."""
    from shipper.catalog.archive import ArchiveCatalog, default_cache_dir
    from shipper.cli.restore import make_plan, open_source
    from shipper.config import load
    from shipper.keys import make_provider

    t = time.perf_counter()
    cfg = load(state / "config.toml")
    backend = open_source(cfg, url)
    sent = Counter[str]()
    client = getattr(backend, "client", None)
    if client is None:
        raise SystemExit(f"{backend!r} has no boto3 client to count requests on (wrapped?)")
    client.meta.events.register(
        "before-send.s3", lambda request, **_: sent.update([request.method])
    )
    providers = [make_provider(k) for k in cfg.keys]
    cat = ArchiveCatalog(
        backend, providers, cache_dir=default_cache_dir(cfg.state_dir), workers=workers
    )
    ns = argparse.Namespace(to="latest", ambiguous="exclude", backup_id=None, server_id=None)
    plan = make_plan(ns, cfg, backend, providers, cat)
    return time.perf_counter() - t, sum(sent.values()), cat.requests, len(plan.steps)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binlogs", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=8, help="parallel header reads (default 8)")
    args = ap.parse_args()

    from shipper.keys.local import LocalKeyring

    os.environ.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        endpoint = f"http://127.0.0.1:{port}"
        _wait_http(f"{endpoint}/moto-api/", proc)
        import boto3

        s3 = boto3.session.Session().client("s3", region_name="us-east-1", endpoint_url=endpoint)
        bucket = "bench-" + uuid.uuid4().hex[:8]
        s3.create_bucket(Bucket=bucket)
        url = f"s3://{bucket}/archive"
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            keyring = LocalKeyring.create(root / "keyring")
            secs = fill(s3, bucket, keyring, args.binlogs)
            n_obj = sum(
                len(p.get("Contents", []))
                for p in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            )
            print(
                f"archive: {args.binlogs} binlogs + indexes + 1 backup: {n_obj} objects "
                f"on moto, written in {secs:.1f}s"
            )
            cold, warm = [], []
            for r in range(args.rounds):
                state = root / f"state{r}"
                write_config(state, url, endpoint, root / "keyring")
                cold.append(plan_once(state, url, args.workers))
                warm.append(plan_once(state, url, args.workers))
            for label, runs in (("first plan (cold cache)", cold), ("second plan (cached)", warm)):
                t = statistics.median(x[0] for x in runs)
                req, counters, steps = runs[0][1], dict(runs[0][2]), runs[0][3]
                print(
                    f"{label:24} {t:6.2f}s  {req:5d} HTTP requests  catalog {counters}  "
                    f"plan replays {steps} binlogs   (rounds: "
                    + ", ".join(f"{x[0]:.2f}s" for x in runs)
                    + ")"
                )
            tc = statistics.median(x[0] for x in cold)
            tw = statistics.median(x[0] for x in warm)
            print(
                f"ratio first/second: {tc / tw:.1f}x time, {cold[0][1] / warm[0][1]:.0f}x requests"
            )
            state = root / "cli"
            write_config(state, url, endpoint, root / "keyring")
            cmd = [
                str(Path(sys.executable).parent / "binlog-shipper"),
                "restore",
                "plan",
                "--to",
                "latest",
                "--from",
                url,
                "--state-dir",
                str(state),
            ]
            walls = []
            for _ in range(2):
                t0 = time.perf_counter()
                subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
                walls.append(time.perf_counter() - t0)
            print(
                f"`binlog-shipper restore plan --from {url.split('/')[0]}//...` wall time: "
                f"first {walls[0]:.2f}s, second {walls[1]:.2f}s (interpreter start included)"
            )
    finally:
        proc.terminate()
        proc.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
