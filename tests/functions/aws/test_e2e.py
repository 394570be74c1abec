"""End to end: a real MariaDB ships (``run --once``, aws-kms key, ``[catalog]``) to moto S3;
moto's bucket notification -> SQS -> the verify_replicate Lambda copies every object to
fake-gcs-server and records it in DynamoDB (moto); the restore_planner Lambda plans from
the catalog exactly what the CLI plans from the host's manifest; ``restore apply
--catalog`` restores from it. A catalog that is down costs the shipper nothing."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shipper.catalog.dynamodb import DynamoCatalog
from shipper.cli import main as cli
from shipper.fleet.service import Store, VerifyReplicate
from shipper.keys.aws_kms import AwsKmsProvider
from shipper.manifest import Manifest
from shipper.restore.model import iso_us
from shipper.sandbox import SandboxServer
from shipper.storage import StorageBackend, open_backend
from tests.e2e.test_dr import _manifest_plan
from tests.e2e.test_pitr import TABLES, World, checksums, run_cli, workload
from tests.functions.aws.conftest import LambdaContext, Poller, create_catalog_table, make_queue
from tests.helpers import load
from tests.services.cloud import FakeGcs, Moto, free_port, unique

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]


def _config(
    state: Path, server: SandboxServer, url: str, moto: Moto, kms: str, ddb: str, ddb_at: str
) -> str:
    return f"""
tenant = "fleet"
state_dir = "{state}"

[mysql]
socket = "{server.socket_path}"
user = "root"

[[targets]]
url = "{url}"
endpoint_url = "{moto.endpoint_url}"
region = "{moto.region}"

[[keys]]
provider = "aws-kms"
key_id = "{kms}"
region = "{moto.region}"
endpoint_url = "{moto.endpoint_url}"

[catalog]
url = "dynamodb://{ddb}"
region = "{moto.region}"
endpoint_url = "{ddb_at}"
"""


@dataclass
class World2:
    w: World
    url: str
    bucket: str
    gcs_bucket: str
    source: StorageBackend
    replica: StorageBackend
    catalog: DynamoCatalog
    poller: Poller
    provider: AwsKmsProvider
    dlq: str
    time_target: str
    backup_id: str
    catalog_down: dict[str, Any]


@pytest.fixture(scope="module")
def world2(
    mariadb_factory: Callable[..., SandboxServer],
    moto: Moto,
    fake_gcs: FakeGcs,
    tmp_path_factory: pytest.TempPathFactory,
) -> World2:
    from functions.aws.verify_replicate import make_handler
    from shipper.config import load as load_config
    from shipper.pipeline.ship import Shipper

    root = tmp_path_factory.mktemp("fleet")
    server = mariadb_factory(server_id=51)
    bucket = moto.bucket(versioning=True)
    url = f"s3://{bucket}"  # the layout at the bucket root, as infra/terraform creates it
    kms = moto.kms_key()
    table = unique("catalog")
    create_catalog_table(moto.client("dynamodb"), table)
    sqs = moto.client("sqs")
    q, arn, dlq = make_queue(sqs, bucket, moto.s3)
    state = root / "state"
    state.mkdir()
    server.execute(*(f"CREATE DATABASE IF NOT EXISTS {t.split('.')[0]}" for t in TABLES))
    for t in TABLES:
        server.execute(
            f"CREATE TABLE {t} (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
            "v VARCHAR(200), n INT) ENGINE=InnoDB"
        )
    w = World(server, state)
    rng = random.Random(20261208)
    workload(w, 20, rng, rotate_every=10)

    # First pass with the catalog down (nothing listens on its port): shipping goes on.
    dead = f"http://127.0.0.1:{free_port()}"
    (state / "config.toml").write_text(_config(state, server, url, moto, kms, table, dead))
    shipper = Shipper(load_config(state / "config.toml"))
    result = shipper.run_once()
    failures = shipper.metrics.registry.get_sample_value(
        "binlog_shipper_failures_total", {"stage": "catalog"}
    )
    shipper.close()
    with Manifest(state / "manifest.sqlite") as m:
        committed = [r.name for r in m.all() if r.state == "committed"]
    catalog = DynamoCatalog(table, client=moto.client("dynamodb"))
    catalog_down = {
        "ok": result.ok,
        "committed": committed,
        "failures": failures,
        "items": len(catalog.binlogs("fleet", 51)),
    }

    (state / "config.toml").write_text(
        _config(state, server, url, moto, kms, table, moto.endpoint_url)
    )
    assert cli(["backup", "take", "--tool", "mariabackup", "--state-dir", str(state)]) == 0
    backup_done = time.time()
    workload(w, 40, rng, rotate_every=15)
    server.flush_binary_logs()
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    with Manifest(state / "manifest.sqlite") as m:
        (backup,) = m.backups()

    gcs_bucket = fake_gcs.bucket()
    s3_opts = {"endpoint_url": moto.endpoint_url, "region": moto.region}
    source = open_backend(f"s3://{bucket}", s3_opts)
    replica = open_backend(f"gs://{gcs_bucket}", {})
    provider = AwsKmsProvider(kms, region=moto.region, endpoint_url=moto.endpoint_url)
    service = VerifyReplicate(
        Store(source, "aws", bucket),
        Store(replica, "gcp", gcs_bucket),
        [provider],
        DynamoCatalog(table, client=moto.client("dynamodb")),
        by="lambda:verify-replicate",
    )
    poller = Poller(sqs, q, arn, make_handler(service))
    poller.poll(rounds=60)
    later = [m for m in w.moments if m.begin > backup_done + 0.5]
    time_target = iso_us(int((later[len(later) // 2].after + 0.002) * 1_000_000))
    return World2(
        w,
        url,
        bucket,
        gcs_bucket,
        source,
        replica,
        catalog,
        poller,
        provider,
        dlq,
        time_target,
        backup["id"],
        catalog_down,
    )


def test_a_catalog_that_is_down_does_not_block_shipping(world2: World2) -> None:
    d = world2.catalog_down
    assert d["ok"] and len(d["committed"]) >= 2
    assert d["failures"] == 1 and d["items"] == 0
    # ... and the next pass caught the catalog up
    names = {b.name for b in world2.catalog.binlogs("fleet", 51)}
    assert set(d["committed"]) <= names


def test_every_object_is_verified_replicated_and_recorded(world2: World2) -> None:
    assert all(not r["batchItemFailures"] for r in world2.poller.responses)
    keys = [i.key for i in world2.source.list("")]
    assert any(k.endswith(".idx.zst.enc") for k in keys)
    assert any("/backups/" in k and ".record" in k for k in keys)
    assert any(k.endswith(".xbstream.zst.enc") for k in keys)
    for k in keys:
        assert world2.replica.open(k).read() == world2.source.open(k).read(), k
    with Manifest(world2.w.state / "manifest.sqlite") as m:
        committed = {r.name for r in m.all() if r.state == "committed"}
    binlogs = world2.catalog.binlogs("fleet", 51)
    assert {b.name for b in binlogs} == committed
    for b in binlogs:
        assert b.state == "committed" and b.index_key
        item = world2.catalog.item(b.object_key or "")
        assert {c: s.state for c, s in item.copies.items()} == {
            "aws": "verified",
            "gcp": "verified",
        }
        assert item.attrs["host_state"] == "committed"
        assert item.copies["aws"].by == "lambda:verify-replicate"
    (bk,) = world2.catalog.backups("fleet", 51)
    assert bk.id == world2.backup_id
    rec = world2.catalog.item(bk.object_key or "")
    assert rec.copies["gcp"].state == "verified" and rec.record_copies["gcp"].state == "verified"


def test_planner_lambda_gives_the_cli_plan(
    world2: World2, moto: Moto, capsys: pytest.CaptureFixture[str]
) -> None:
    from functions.aws.restore_planner import Planner, make_handler

    catalog = DynamoCatalog(world2.catalog.table, client=moto.client("dynamodb"))
    handler = make_handler(Planner(catalog, world2.source, [world2.provider]))
    state = world2.w.state
    for target, request in (
        (world2.time_target, {"time": world2.time_target}),
        ("latest", "latest"),
    ):
        want = _manifest_plan(state, target)
        before = catalog.requests
        got = handler(
            {"tenant": "fleet", "server_id": 51, "target": request}, LambdaContext("planner")
        )
        assert got == json.loads(json.dumps(want, default=str)), target
        assert catalog.requests - before <= 4  # registry-free: binlogs + backups Queries
        rc, out, err = run_cli(
            [
                "restore",
                "plan",
                "--to",
                target,
                "--catalog",
                f"dynamodb://{world2.catalog.table}",
                "--state-dir",
                str(state),
                "--json",
            ],
            capsys,
        )
        assert rc == 0, err
        assert json.loads(out) == got
    gtid = want["gtid_position"]
    assert handler(
        {"tenant": "fleet", "server_id": 51, "target": {"gtid": gtid}}, LambdaContext()
    ) == json.loads(json.dumps(_manifest_plan(state, gtid), default=str))
    refused = handler(
        {"tenant": "fleet", "server_id": 51, "target": {"time": "2001-01-01T00:00:00Z"}},
        LambdaContext(),
    )
    assert refused["refused"]["reason"] == "before_window"
    assert refused["refused"]["window"]["earliest"]
    assert "error" in handler({"tenant": "fleet", "target": "latest"}, LambdaContext())


def test_restore_apply_from_the_catalog(
    world2: World2, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "restored"
    args = [
        "restore",
        "apply",
        "--to",
        "latest",
        "--catalog",
        f"dynamodb://{world2.catalog.table}",
        "--state-dir",
        str(world2.w.state),
        "--datadir",
        str(base / "data"),
        "--work-dir",
        str(tmp_path / "work"),
        "--json",
    ]
    rc, out, err = run_cli(args, capsys)
    assert rc == 0, err
    restored = SandboxServer(base_dir=base, server_id=98)
    restored.start()
    try:
        assert checksums(restored) == world2.w.moments[-1].checksums
    finally:
        restored.stop()
    assert json.loads(out)["plan"]["gtid_position"] == world2.w.moments[-1].gtid


__all__ = ["load"]
