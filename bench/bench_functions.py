"""The AWS functions against the emulators: verify-and-replicate of a big object, and the
restore planner over a big catalog.

    .venv/bin/python bench/bench_functions.py verify [--mb 1024]
    .venv/bin/python bench/bench_functions.py planner [--binlogs 10000] [--rounds 3]
        [--no-scan] [--workers 8]

``verify``: a throwaway MariaDB writes one real ROW binlog of ``--mb`` MiB
(bench_ship.py's workload, max_binlog_size 1 GiB); it is sealed (aws-kms on
moto) and uploaded to moto S3 as the shipper does. Then a *fresh process* runs
``functions.aws.verify_replicate.handler`` -- the deployed entry point, its
service built from the environment exactly as in Lambda -- on an SQS batch
naming the object: stream from S3, KMS unwrap, every chunk authenticated,
zstd, SHA-256, every event CRC32 by the scanner thread, the catalog (DynamoDB
on moto), the streamed conditional copy to fake-gcs-server (16 MiB resumable
chunks) and the copy's check. Wall time and peak RSS (``wait4`` ru_maxrss) of
that process are reported; MB/s is the object's stored size over the wall time.

``planner``: ``--binlogs`` binlogs (each with its transaction index) and one
base backup are archived on moto S3 the way the shipper writes them
(tests/synthetic_archive.py), and the catalog items the host and the function
would have written for them are put into DynamoDB (batch writes, to fill it
fast). Then ``functions.aws.restore_planner``'s handler plans to ``latest``
(the whole archive: the backup is at the second binlog) with ``--workers`` binlog
key ranges queried at once (1: page after page). Requests are counted and timed
on the clients (botocore's ``before-send`` .. ``before-parse``: sent until the
answer is read, before it is parsed): "waiting on DynamoDB" is the time at least
one DynamoDB request was waiting, "our side" everything else (parsing,
deserialising, the planner, the transaction-index reads from S3, also shown on
their own); "our CPU" is the process's CPU time during the call, which also
counts work done while a request was waiting. Side by side, the archive-scan
plan of ``restore plan --from s3://`` over the same archive (``ArchiveCatalog``,
cold cache, then cached), as bench_plan.py measures it. The load average is
printed before and after.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.functions.aws.conftest import create_catalog_table  # noqa: E402
from tests.services.cloud import _wait_http, free_port, start_fake_gcs  # noqa: E402

REGION = "us-east-1"


def moto_server() -> tuple[subprocess.Popen[bytes], str]:
    os.environ.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION=REGION)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    _wait_http(f"{url}/moto-api/", proc)
    return proc, url


def client(service: str, endpoint: str) -> Any:
    import boto3

    return boto3.session.Session().client(service, region_name=REGION, endpoint_url=endpoint)


# --------------------------------------------------------------------------- verify


def bench_verify(mb: int) -> None:
    from bench_ship import workload

    from shipper.keys.aws_kms import AwsKmsProvider
    from shipper.sandbox import SandboxServer
    from shipper.storage import open_backend
    from tests.functions.aws.conftest import archive_binlog

    moto, endpoint = moto_server()
    gcs, gcs_url = start_fake_gcs()
    try:
        with tempfile.TemporaryDirectory() as d:
            base = Path(d)
            server = SandboxServer(base_dir=base / "db", server_id=8, max_binlog_size=1 << 30)
            server.start()
            try:
                t = time.perf_counter()
                workload(server, mb)
                name, size = max(server.binary_logs()[:-1], key=lambda nv: nv[1])
                path = server.binlog_dir / name
                took = time.perf_counter() - t
                print(f"binlog {name}: {size / 2**20:.0f} MiB written in {took:.0f}s")
            finally:
                server.stop()  # the binlog file stays in the temporary directory
            s3 = client("s3", endpoint)
            bucket = "bench-" + uuid.uuid4().hex[:8]
            s3.create_bucket(Bucket=bucket)
            kms_key = client("kms", endpoint).create_key()["KeyMetadata"]["Arn"]
            table = "catalog-" + uuid.uuid4().hex[:8]
            create_catalog_table(client("dynamodb", endpoint), table)
            os.environ["STORAGE_EMULATOR_HOST"] = gcs_url
            from google.auth.credentials import AnonymousCredentials
            from google.cloud import storage

            gcs_bucket = "bench-" + uuid.uuid4().hex[:8]
            storage.Client(
                project="p",
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": gcs_url},
            ).create_bucket(gcs_bucket)
            store = open_backend(f"s3://{bucket}", {"endpoint_url": endpoint, "region": REGION})
            kms = AwsKmsProvider(kms_key, region=REGION, endpoint_url=endpoint)
            t = time.perf_counter()
            key = archive_binlog(store, [kms], path, base, name, 8, "bench")
            stored = store.stat(key).size
            print(
                f"sealed and uploaded to moto S3 in {time.perf_counter() - t:.0f}s: "
                f"{stored / 2**20:.0f} MiB stored"
            )
            body = {
                "Records": [
                    {
                        "eventName": "ObjectCreated:Put",
                        "s3": {"bucket": {"name": bucket}, "object": {"key": key, "size": stored}},
                    }
                ]
            }
            event = {
                "Records": [
                    {
                        "messageId": "m1",
                        "receiptHandle": "r",
                        "body": json.dumps(body),
                        "attributes": {},
                        "messageAttributes": {},
                        "md5OfBody": "",
                        "eventSource": "aws:sqs",
                        "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
                        "awsRegion": REGION,
                    }
                ]
            }
            env = {
                **os.environ,
                "ARCHIVE_BUCKET": bucket,
                "CATALOG_TABLE": table,
                "REPLICA_GCS_BUCKET": gcs_bucket,
                "KMS_KEY_ID": kms_key,
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_REGION": REGION,
                "STORAGE_EMULATOR_HOST": gcs_url,
                "POWERTOOLS_TRACE_DISABLED": "true",
            }
            proc = subprocess.Popen(
                [sys.executable, __file__, "_verify_child", json.dumps(event)],
                env=env,
                stdout=subprocess.PIPE,
                cwd=ROOT,
            )
            t = time.perf_counter()
            out = proc.stdout.read() if proc.stdout else b""
            _pid, status, usage = os.wait4(proc.pid, 0)
            took = time.perf_counter() - t
            answer = out.decode().strip().splitlines()[-1]
            print(
                f"verify_replicate.handler (fresh process): {stored / 2**20:.0f} MiB stored "
                f"({size / 2**20:.0f} MiB of binlog) in {took:.1f}s = {stored / 1e6 / took:.1f} "
                f"MB/s stored, {size / 1e6 / took:.1f} MB/s of binlog, exit "
                f"{os.waitstatus_to_exitcode(status)}, peak RSS {usage.ru_maxrss / 1024:.1f} MiB "
                f"(target <= 256 MB); handler returned {answer}"
            )
            from shipper.catalog.dynamodb import DynamoCatalog

            item = DynamoCatalog(table, client=client("dynamodb", endpoint)).item(key)
            print("catalog: " + ", ".join(f"{c}={s.state}" for c, s in sorted(item.copies.items())))
    finally:
        for p in (moto, gcs):
            p.terminate()
            p.wait()


class Ctx:
    """The Lambda context fields Powertools reads."""

    function_name = "verify-replicate"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:1:function:verify-replicate"
    aws_request_id = "bench"


def _verify_child(event: str) -> None:
    from functions.aws.verify_replicate import handler

    resp = handler(json.loads(event), Ctx())
    print(json.dumps(resp))


# --------------------------------------------------------------------------- planner


def bench_planner(n: int, rounds: int, scan: bool = True, workers: int = 8) -> None:
    from bench_plan import archive_rows, plan_once, write_config

    from functions.aws.restore_planner import Planner, make_handler
    from shipper import objects
    from shipper.catalog.dynamodb import DynamoCatalog
    from shipper.catalog.dynamodb_items import BinlogEntry, CopyState, item_for_key
    from shipper.keys.local import LocalKeyring
    from shipper.storage.s3 import S3Backend
    from tests.synthetic_archive import put_backup, put_binlog

    moto, endpoint = moto_server()
    try:
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            keyring = LocalKeyring.create(root / "keyring")
            s3 = client("s3", endpoint)
            bucket = "bench-" + uuid.uuid4().hex[:8]
            s3.create_bucket(Bucket=bucket)
            store = S3Backend(bucket, client=s3)
            rows, idxs, backup = archive_rows(n)
            t = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                keys = list(
                    pool.map(
                        lambda r: put_binlog(store, [keyring], r, idxs[r.name], tenant="bench"),
                        rows,
                    )
                )
            rec = put_backup(store, [keyring], backup, tenant="bench", server_id=7)
            print(
                f"archive: {n} binlogs + indexes + 1 backup on moto S3 "
                f"in {time.perf_counter() - t:.0f}s"
            )

            ddb = client("dynamodb", endpoint)
            table = "catalog-" + uuid.uuid4().hex[:8]
            create_catalog_table(ddb, table)
            cat = DynamoCatalog(table, client=ddb)
            now = time.time()
            items = []
            for row, key in zip(rows, keys, strict=True):
                e = BinlogEntry(
                    object_key=key,
                    binlog_name=row.name,
                    plaintext_sha256=str(put_sha(row)),
                    plaintext_size=int(row.size or 0),
                    first_ts=row.first_ts,
                    last_ts=row.last_ts,
                    gtid_previous=row.gtid_previous or "",
                    gtid_set=row.gtid_end or "",
                    host_state="committed",
                )
                ref = item_for_key(key)
                attrs = {"pk": ref.pk, "sk": ref.sk, **e.attributes(), "host_state": "committed"}
                for slot, k in (("copy", key), ("index_copy", objects.index_key(key))):
                    for cloud in ("aws", "gcp"):
                        c = CopyState(cloud, bucket, k, "verified", now, "lambda:bench")
                        attrs[f"{slot}_{cloud}"] = c.to_item()
                items.append(attrs)
            t = time.perf_counter()
            for i in range(0, len(items), 25):
                ddb.batch_write_item(
                    RequestItems={
                        table: [{"PutRequest": {"Item": cat._dump(a)}} for a in items[i : i + 25]]
                    }
                )
            cat.put_backup(rec.record_key("bench"), rec)
            print(
                f"catalog: {n} binlog items + 1 backup in DynamoDB "
                f"in {time.perf_counter() - t:.0f}s"
            )

            pc, ps3 = client("dynamodb", endpoint), client("s3", endpoint)
            waits = Waits(pc, ps3)
            runs = []
            for _ in range(rounds):
                waits.clear()
                cat = DynamoCatalog(table, client=pc, workers=workers)
                planner = Planner(cat, S3Backend(bucket, client=ps3), [keyring])
                handler = make_handler(planner)
                t, cpu = time.perf_counter(), time.process_time()
                plan = handler({"tenant": "bench", "server_id": 7, "target": "latest"}, Ctx)
                wall, cpu = time.perf_counter() - t, time.process_time() - cpu
                ddb, s3_ = waits.seconds("dynamodb"), waits.seconds("s3")
                runs.append((wall, ddb, s3_, cpu, waits.count(), cat.requests, plan))
                print(
                    f"  round: {wall:.2f}s wall = {ddb:.2f}s waiting on DynamoDB (moto) + "
                    f"{wall - ddb:.2f}s our side (of which {s3_:.2f}s waiting on S3); "
                    f"our CPU {cpu:.2f}s; requests {waits.count()}"
                )
            wall = statistics.median(r[0] for r in runs)
            ddb = statistics.median(r[1] for r in runs)
            ours = statistics.median(r[0] - r[1] for r in runs)
            s3_ = statistics.median(r[2] for r in runs)
            cpu = statistics.median(r[3] for r in runs)
            plan = runs[0][6]
            size = len(json.dumps(plan))
            print(
                f"restore_planner handler, latest over {n} binlogs, workers {workers}: "
                f"{wall:.2f}s wall median (rounds: {', '.join(f'{r[0]:.2f}s' for r in runs)}) "
                f"= {ddb:.2f}s waiting on DynamoDB (moto) + {ours:.2f}s our side (everything "
                f"else, of which {s3_:.2f}s waiting on S3); our CPU {cpu:.2f}s; DynamoDB "
                f"requests {runs[0][5]}, HTTP requests {runs[0][4]}; plan: "
                f"{len(plan['binlogs'])} binlogs, {size / 1e6:.1f} MB of JSON"
            )

            # the archive scan over the same archive, as `restore plan --from s3://` does
            url = f"s3://{bucket}"
            state = root / "state"
            write_config(state, url, endpoint, root / "keyring")
            for label in ("archive scan, cold cache", "archive scan, cached")[: 2 if scan else 0]:
                secs2, req, counters, steps = plan_once(state, url, 8)
                print(
                    f"{label:26} {secs2:6.2f}s  {req:6d} HTTP requests  {dict(counters)}  "
                    f"plan replays {steps}"
                )
    finally:
        moto.terminate()
        moto.wait()


class Waits:
    """When the clients' requests were waiting on the server: from botocore's
    ``before-send`` to its ``before-parse`` (the answer read, not parsed yet), per thread,
    so requests made at once count once (the union of the intervals)."""

    def __init__(self, *clients: Any) -> None:
        self._lock = threading.Lock()
        self._open: dict[tuple[str, int], float] = {}
        self.spans: list[tuple[str, float, float]] = []
        for c in clients:
            svc = c.meta.service_model.endpoint_prefix
            c.meta.events.register(f"before-send.{svc}", functools.partial(self._send, svc))
            c.meta.events.register(f"before-parse.{svc}", functools.partial(self._got, svc))

    def _send(self, svc: str, **_: Any) -> None:
        with self._lock:
            self._open[svc, threading.get_ident()] = time.perf_counter()

    def _got(self, svc: str, **_: Any) -> None:
        with self._lock:
            start = self._open.pop((svc, threading.get_ident()), None)
            if start is not None:
                self.spans.append((svc, start, time.perf_counter()))

    def clear(self) -> None:
        self.spans.clear()

    def count(self) -> dict[str, int]:
        return dict(Counter(svc for svc, _, _ in self.spans))

    def seconds(self, svc: str) -> float:
        total, end = 0.0, 0.0
        for _, a, b in sorted(x for x in self.spans if x[0] == svc):
            total += max(0.0, b - max(a, end))
            end = max(end, b)
        return total


def put_sha(row: Any) -> str:
    import hashlib

    from tests.synthetic_archive import plaintext_for

    return hashlib.sha256(plaintext_for(row)).hexdigest()


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "_verify_child":
        _verify_child(sys.argv[2])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    v = sub.add_parser("verify")
    v.add_argument("--mb", type=int, default=1024)
    p = sub.add_parser("planner")
    p.add_argument("--binlogs", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--no-scan", action="store_true", help="skip the archive-scan plans")
    p.add_argument(
        "--workers", type=int, default=8, help="binlog key ranges queried at once (1: page by page)"
    )
    args = ap.parse_args()
    if args.what == "verify":
        bench_verify(args.mb)
    else:
        print(f"load average {os.getloadavg()}")
        bench_planner(args.binlogs, args.rounds, scan=not args.no_scan, workers=args.workers)
        print(f"load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
