"""The failover backlog drains back to the primary through whichever side gets there
first -- the secondary's function or the host -- and neither order is a conflict.

A real MariaDB ships to S3 (``routing.primary = "aws"``, ``resilience.failover``)
with the whole fleet running against the emulators: the Lambda (S3 -> GCS,
in-process, fed by moto's S3 -> SQS notifications) and the Cloud Function
(GCS -> S3, functions-framework, fed the finalize events Eventarc would send).
S3 goes down (the fault proxy refuses the bucket; KMS and DynamoDB, on the same
moto server, still answer): the host's S3 circuit opens, the binlogs fail over
to GCS, and the function's copies back to S3 fail and wait for Eventarc's
redelivery. S3 returns; then, in each order:

* ``function_first``: the redelivered events copy the objects back; the host's
  next pass finds them, verifies them and records them, uploading nothing.
* ``host_first``: the host's pass drains its backlog (re-sealed: other envelopes
  than the ones on GCS); the redelivered events find them, verify them in full
  and record them (``equivalent``): no lineage conflict.
* ``lambda_first``: as host_first, but the host's uploads reach the Lambda first,
  which finds the failed-over envelopes on GCS (``equivalent`` the other way);
  the redelivered events then have nothing left to do.

Whatever the order: each object once per cloud, every binlog committed once,
both copies verified in the catalog, no conflict or integrity failure anywhere,
and fetch and restore plan give the same from either cloud.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from functions.aws.verify_replicate import make_handler
from shipper.catalog.dynamodb import DynamoCatalog
from shipper.catalog.dynamodb_items import CopyState
from shipper.cli import main as cli
from shipper.fleet.service import Store, VerifyReplicate
from shipper.fleet.verify import verify
from shipper.keys.aws_kms import AwsKmsProvider
from shipper.pipeline.ship import PassResult, Shipper
from shipper.sandbox import SandboxServer
from shipper.storage import StorageBackend, open_backend
from shipper.storage.breaker import CLOSED, HALF_OPEN, OPEN
from tests.functions.aws.conftest import Poller, create_catalog_table, emf, make_queue, totals
from tests.functions.gcp.conftest import (
    Answer,
    Function,
    function_env,
    metric_events,
    object_resource,
    serve,
    stop,
)
from tests.helpers import closed_binlogs, parse, rotate, run_cli
from tests.integration.test_faults import TIMEOUTS, binlog_objects
from tests.services.cloud import FakeGcs, Moto, unique
from tests.services.faultproxy import FaultProxy, wait_until

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]

TENANT = "drain"
COOLDOWN = 2


def _config(
    state: Path, server: SandboxServer, s3: str, gs: str, s3_at: str, moto: Moto, kms: str, ddb: str
) -> str:
    return f"""
tenant = "{TENANT}"
state_dir = "{state}"

[mysql]
socket = "{server.socket_path}"
user = "root"

[routing]
primary = "aws"          # gs is the replica: the host writes it only on failover

[resilience]
failover = true
breaker_threshold = 1
breaker_cooldown = {COOLDOWN}
retry_attempts = 2
retry_base = 0.01

[[targets]]
url = "{s3}"
endpoint_url = "{s3_at}"
region = "{moto.region}"
{TIMEOUTS}

[[targets]]
url = "{gs}"

# AWS KMS, which both functions can unwrap with; not behind the proxy: S3 alone is down
[[keys]]
provider = "aws-kms"
key_id = "{kms}"
region = "{moto.region}"
endpoint_url = "{moto.endpoint_url}"

[catalog]
url = "dynamodb://{ddb}"
region = "{moto.region}"
endpoint_url = "{moto.endpoint_url}"
"""


@dataclass
class Eventarc:
    """Delivers a finalize event for each GCS object generation once, as Eventarc does,
    and redelivers the ones the function answered with an error."""

    fn: Function
    gcs: FakeGcs
    bucket: str
    delivered: set[tuple[str, str]] = field(default_factory=set)
    #: key -> the object resource of an event the function failed (to redeliver)
    failed: dict[str, dict[str, Any]] = field(default_factory=dict)

    def deliver_new(self) -> dict[str, Answer]:
        answers = {}
        for blob in self.gcs.client().list_blobs(self.bucket):
            if (blob.name, str(blob.generation)) in self.delivered:
                continue
            self.delivered.add((blob.name, str(blob.generation)))
            answers[blob.name] = self._post(object_resource(self.gcs, self.bucket, blob.name))
        return answers

    def redeliver(self) -> dict[str, Answer]:
        pending, self.failed = self.failed, {}
        return {k: self._post(res) for k, res in sorted(pending.items())}

    def _post(self, resource: dict[str, Any]) -> Answer:
        a = self.fn.binary(resource)
        if a.status != 200:
            self.failed[resource["name"]] = resource
        return a


@dataclass
class Fleet:
    server: SandboxServer
    state: Path
    shipper: Shipper
    s3_url: str
    gs_url: str
    s3_bucket: str
    gs_bucket: str
    s3: StorageBackend
    gs: StorageBackend
    provider: AwsKmsProvider
    catalog: DynamoCatalog
    proxy: FaultProxy
    lam: Poller
    eventarc: Eventarc
    moto: Moto
    shipped: list[str] = field(default_factory=list)

    def ship(self) -> PassResult:
        res = self.shipper.run_once()
        self.shipped.extend(res.shipped)
        return res

    def keys(self, backend: StorageBackend) -> set[str]:
        return {i.key for i in backend.list("")}

    def s3_puts(self, since: int) -> list[tuple[str, int]]:
        """(path, status) of the object PUTs S3 answered since answer ``since``."""
        return [
            (path, status)
            for method, path, status in self.proxy.answers[since:]
            if method == "PUT" and path.startswith(f"/{self.s3_bucket}/")
        ]


@pytest.fixture
def fleet(
    mariadb_factory: Callable[..., SandboxServer],
    moto: Moto,
    fake_gcs: FakeGcs,
    tmp_path: Path,
) -> Iterator[Fleet]:
    server = mariadb_factory(server_id=81)
    s3_bucket, gs_bucket = moto.bucket(versioning=True), fake_gcs.bucket()
    kms = moto.kms_key()
    table = unique("catalog")
    create_catalog_table(moto.client("dynamodb"), table)
    provider = AwsKmsProvider(kms, region=moto.region, endpoint_url=moto.endpoint_url)
    catalog = DynamoCatalog(table, client=moto.client("dynamodb"))
    s3_direct = open_backend(
        f"s3://{s3_bucket}", {"endpoint_url": moto.endpoint_url, "region": moto.region}
    )
    gs = open_backend(f"gs://{gs_bucket}", {})

    # the Lambda: moto's S3 -> SQS notifications, handled in-process
    sqs = moto.client("sqs")
    q, arn, _dlq = make_queue(sqs, s3_bucket, moto.s3)
    lam = VerifyReplicate(
        Store(s3_direct, "aws", s3_bucket),
        Store(gs, "gcp", gs_bucket),
        [provider],
        catalog,
        by="lambda:test",
    )
    poller = Poller(sqs, q, arn, make_handler(lam))

    with FaultProxy(moto.endpoint_url, flavor="s3") as proxy:
        proxy.down_only = f"/{s3_bucket}"  # "S3 down": the bucket, not KMS or DynamoDB
        # the Cloud Function reaches AWS through the proxy too, so S3 is down for it as well
        env = function_env(
            moto, fake_gcs, bucket=gs_bucket, replica=s3_bucket, table=table, kms_key=kms
        )
        env["AWS_ENDPOINT_URL"] = proxy.url
        fn = serve(env, tmp_path)
        try:
            state = tmp_path / "state"
            state.mkdir()
            # the archive layout at the bucket roots, as infra/terraform creates it
            s3_url, gs_url = f"s3://{s3_bucket}", f"gs://{gs_bucket}"
            text = _config(state, server, s3_url, gs_url, proxy.url, moto, kms, table)
            (state / "config.toml").write_text(text)
            shipper = Shipper(parse(text))
            try:
                yield Fleet(
                    server,
                    state,
                    shipper,
                    s3_url,
                    gs_url,
                    s3_bucket,
                    gs_bucket,
                    s3_direct,
                    gs,
                    provider,
                    catalog,
                    proxy,
                    poller,
                    Eventarc(fn, fake_gcs, gs_bucket),
                    moto,
                )
            finally:
                shipper.close()
        finally:
            stop(fn)


def _status(lines: list[dict[str, Any]], key: str) -> str:
    (line,) = [x for x in lines if x.get("key") == key and "event" not in x and "status" in x]
    return str(line["status"])


@pytest.mark.parametrize("order", ["function_first", "host_first", "lambda_first"])
def test_the_backlog_drains_once_whoever_drains_it(
    fleet: Fleet,
    order: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    f = fleet
    caplog.set_level(logging.INFO, logger="shipper.fleet")
    breaker = f.shipper.resilient.breakers[f.s3_url]

    # healthy: the host ships to S3, a base backup too; the Lambda copies all to GCS
    rotate(f.server, 1, rows=20)
    assert f.ship().ok
    assert cli(["backup", "take", "--tool", "mysqldump", "--state-dir", str(f.state)]) == 0
    f.lam.poll()
    assert all(a.status == 200 for a in f.eventarc.deliver_new().values())  # all "already"
    healthy = closed_binlogs(f.server)
    before = f.keys(f.gs)
    assert f.keys(f.s3) == before

    # S3 down: the circuit opens at the first failed pass and the binlogs fail over to GCS
    f.proxy.down = True
    rotate(f.server, 2, rows=20)
    res = f.ship()
    assert breaker.state == OPEN
    failed_over = closed_binlogs(f.server)[len(healthy) :]
    assert res.shipped == failed_over
    assert f.shipper.manifest.backlog(f.s3_url) == failed_over
    moved = f.keys(f.gs) - before  # the failed-over binlogs and their indexes
    assert binlog_objects(iter(moved)) == dict.fromkeys(failed_over, 1) and len(moved) == 4
    # Eventarc: the function verifies them, but its copies to S3 fail: retried later
    answers = f.eventarc.deliver_new()
    assert sorted(answers) == sorted(moved)
    assert all(a.status == 500 for a in answers.values())
    lines = f.eventarc.fn.new_lines()
    assert Counter(e for e, _, _ in metric_events(lines)) == {"replication_failed": 4}
    for k in moved:
        assert _copies(f, k)["gcp"].state == "verified"

    f.proxy.down = False  # S3 is back
    wait_until(lambda: breaker.state == HALF_OPEN, timeout=COOLDOWN + 30)
    if order == "function_first":
        answers = f.eventarc.redeliver()
        assert {k: a.status for k, a in answers.items()} == dict.fromkeys(sorted(moved), 200)
        lines = f.eventarc.fn.new_lines()
        assert {_status(lines, k) for k in moved} == {"replicated"}
        copies = {k: f.s3.stat(k).version for k in moved}
        f.lam.poll()  # the copies' S3 events: both copies already verified
        mark = len(f.proxy.answers)
        res = f.ship()
        assert res.ok, res
        assert breaker.state == CLOSED
        assert res.backfilled[f.s3_url] == failed_over
        # found, verified, recorded: no object uploaded (an index's conditional PUT is
        # refused with 412, which is how the host learns that it is there)
        puts = f.s3_puts(mark)
        assert not [p for p in puts if p[1] < 300], puts
        assert {p for p, _ in puts} <= {f"/{f.s3_bucket}/{k}" for k in moved if ".idx." in k}
        for n in failed_over:
            p = f.shipper.manifest.placements(n)[f.s3_url]
            assert p.state == "verified" and p.version == copies[p.object_key or ""]
        for k in moved:  # the function's byte copies
            assert f.s3.open(k).read() == f.gs.open(k).read()
    else:
        mark = len(f.proxy.answers)
        res = f.ship()
        assert res.ok, res
        assert breaker.state == CLOSED
        assert res.backfilled[f.s3_url] == failed_over
        assert sorted(p for p, s in f.s3_puts(mark) if s == 200) == sorted(
            f"/{f.s3_bucket}/{k}" for k in moved
        )
        for k in moved:  # re-sealed by the host: other envelopes of the same binlogs
            assert f.s3.open(k).read() != f.gs.open(k).read()
        hosts = {k: f.s3.stat(k) for k in moved}
        if order == "lambda_first":
            caplog.clear()
            f.lam.poll()
            # the failed-over envelopes on GCS stay what the function found them: verified
            assert {k: _copies(f, k)["gcp"].state for k in moved} == dict.fromkeys(
                moved, "verified"
            )
            equivalent = [r for r in caplog.records if r.getMessage().startswith("equivalent:")]
            assert len(equivalent) == len(moved)
        answers = f.eventarc.redeliver()
        assert {k: a.status for k, a in answers.items()} == dict.fromkeys(sorted(moved), 200)
        lines = f.eventarc.fn.new_lines()
        want = "equivalent" if order == "host_first" else "already"
        assert {k: _status(lines, k) for k in moved} == dict.fromkeys(moved, want)
        assert sorted(metric_events(lines)) == (
            [("verified", TENANT, "81")] * len(moved) if order == "host_first" else []
        )
        f.lam.poll()  # the host's S3 uploads reach the Lambda (late, in host_first)
        for k in moved:
            aws = _copies(f, k)["aws"]
            assert aws.state == "verified", aws
            assert aws.version == hosts[k].version  # the host's object, recorded as it is
            assert aws.checksum == verify(f.s3, k, [f.provider]).checksum
            assert f.s3.stat(k).version == hosts[k].version
    _settled(f, capsys, caplog, healthy + failed_over)


def _copies(f: Fleet, key: str) -> dict[str, CopyState]:
    """The catalog's copies of the object at ``key`` (a binlog's, or its index's)."""
    item = f.catalog.item(key)
    assert item is not None, key
    return item.copies_for("index_copy" if ".idx." in key else "copy")


def _settled(
    f: Fleet,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    names: list[str],
) -> None:
    """What every order must end with."""
    assert closed_binlogs(f.server) == names
    rows = f.shipper.manifest.all()
    assert [r.name for r in rows] == names and {r.state for r in rows} == {"committed"}
    assert sorted(f.shipped) == names  # each committed by exactly one pass
    assert f.shipper.manifest.backlog(f.s3_url) == []

    # each object once per cloud: one S3 version, the same keys on GCS
    listing = f.moto.s3.list_object_versions(Bucket=f.s3_bucket)
    assert not listing.get("DeleteMarkers")
    versions = Counter(v["Key"] for v in listing["Versions"])
    assert set(versions.values()) == {1}, versions
    assert set(versions) == f.keys(f.gs)
    assert binlog_objects(k for k in versions if "/backups/" not in k) == dict.fromkeys(names, 1)
    assert len([k for k in versions if "/backups/" in k]) == 2  # the backup and its record

    # the catalog: every copy of every binlog and index verified, nothing in conflict
    binlogs = f.catalog.binlogs(TENANT, 81)
    assert sorted(b.name for b in binlogs) == names
    for b in binlogs:
        item = f.catalog.item(b.object_key or "")
        assert item is not None, b.name
        for copies in (item.copies, item.index_copies):
            assert {c: s.state for c, s in copies.items()} == {
                "aws": "verified",
                "gcp": "verified",
            }, (b.name, copies)
    fn_events = {e for e, _, _ in metric_events(f.eventarc.fn.lines())}
    assert not fn_events & {"lineage_conflicts", "integrity_failed"}
    assert not any("CONFLICT" in x["message"] for x in f.eventarc.fn.lines())
    lam = totals(emf(capsys.readouterr().out))
    assert lam.get("lineage_conflicts", 0) == 0 and lam.get("integrity_failed", 0) == 0
    assert "LINEAGE CONFLICT" not in caplog.text and "INTEGRITY FAILED" not in caplog.text

    # either cloud alone gives the same binlogs and the same plan
    for n in names:
        want = (f.server.binlog_dir / n).read_bytes()
        for url in (f.s3_url, f.gs_url):
            out = f.state / f"fetched-{n}"
            args = ["fetch", n, "-o", str(out), "--from", url, "--force"]
            assert cli([*args, "--state-dir", str(f.state)]) == 0
            got = out.read_bytes()
            assert hashlib.sha256(got).digest() == hashlib.sha256(want).digest(), (n, url)
    plans = {
        src: _plan(f.state, extra, capsys)
        for src, extra in {
            "manifest": [],
            "catalog": ["--catalog", f"dynamodb://{f.catalog.table}"],
            "s3": ["--from", f.s3_url, "--catalog", "archive"],
            "gs": ["--from", f.gs_url, "--catalog", "archive"],
        }.items()
    }
    assert len(plans["manifest"]["binlogs"]) >= 1
    for src, plan in plans.items():
        assert plan == plans["manifest"], src


def _plan(state: Path, extra: list[str], capsys: pytest.CaptureFixture[str]) -> Any:
    args = ["restore", "plan", "--to", "latest", "--state-dir", str(state), "--json", *extra]
    rc, out, err = run_cli(args, capsys)
    assert rc == 0, err
    return json.loads(out)
