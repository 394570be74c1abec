"""Shipping through a fault-injecting proxy in front of moto server and fake-gcs-server.

20% of the requests to either cloud are answered with 429 / 503, reset, or
stalled past the client's read timeout, while the real MariaDB rotates a few
dozen binlogs. Every binlog must be archived exactly once on each cloud,
committed in order, and the failures counted by ``error_code``.
"""

from __future__ import annotations

import io
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shipper.errors import ObjectNotFound, PermissionDenied, StorageError
from shipper.keys.local import LocalKeyring
from shipper.pipeline.ship import Shipper
from shipper.sandbox import SandboxServer
from shipper.storage import open_backend
from shipper.storage.retry import RetryingBackend
from tests.helpers import closed_binlogs, parse, rotate
from tests.services.cloud import FakeGcs, Moto, MotoAuth
from tests.services.faultproxy import FaultProxy
from tests.services.gauth import GcsIam, write_key_file

pytestmark = pytest.mark.mariadb

TIMEOUTS = "connect_timeout = 1\nread_timeout = 1"


def config(
    state: Path,
    server: SandboxServer,
    *,
    s3: tuple[str, str] | None = None,
    gs: str | None = None,
    gs_options: str = "timeout = 1",
    routing: str = 'primary = "aws"\ndirect_dual = true',
    resilience: str = "",
) -> str:
    """A config for ``server`` writing s3 (url, endpoint) and/or gs (url) targets."""
    state.mkdir(parents=True, exist_ok=True)
    keyring = state / "keyring"
    if not keyring.exists():
        LocalKeyring.create(keyring)
    targets = ""
    if s3 is not None:
        targets += (
            f'[[targets]]\nurl = "{s3[0]}"\nendpoint_url = "{s3[1]}"\nregion = "us-east-1"\n'
            f"{TIMEOUTS}\n\n"
        )
    if gs is not None:
        targets += f'[[targets]]\nurl = "{gs}"\n{gs_options}\n\n'
    return f"""
tenant = "acme"
state_dir = "{state}"

[mysql]
socket = "{server.socket_path}"
user = "root"

[routing]
{routing}

[resilience]
{resilience}

{targets}
[[keys]]
provider = "local"
path = "{keyring}"
"""


def binlog_objects(keys: Iterator[str]) -> Counter[str]:
    """binlog name -> how many objects hold it (any key: plain, lineage, quarantine)."""
    out: Counter[str] = Counter()
    for k in keys:
        base = k.rsplit("/", 1)[-1]
        if ".zst.enc" in base and ".idx." not in base:
            out[base.split(".zst.enc")[0].split("~")[0]] += 1
    return out


@pytest.fixture()
def proxies(moto: Moto, fake_gcs: FakeGcs) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    with (
        FaultProxy(moto.endpoint_url, rate=0.2, seed=11, flavor="s3", stall=2) as s3p,
        # rewrite_links: whole-object downloads follow mediaLink, through the proxy too
        FaultProxy(
            fake_gcs.endpoint_url, rate=0.2, seed=12, flavor="gcs", stall=2, rewrite_links=True
        ) as gsp,
    ):
        yield s3p, gsp


def test_twenty_percent_faults_lose_nothing_and_duplicate_nothing(
    mariadb_factory,  # type: ignore[no-untyped-def]
    moto: Moto,
    fake_gcs: FakeGcs,
    proxies: tuple[FaultProxy, FaultProxy],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3p, gsp = proxies
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gsp.url)
    server = mariadb_factory(server_id=61)
    s3_bucket = moto.bucket(versioning=True)
    gs_bucket = fake_gcs.bucket()
    text = config(
        tmp_path / "state",
        server,
        s3=(f"s3://{s3_bucket}/arch", s3p.url),
        gs=f"gs://{gs_bucket}/arch",
        resilience="retry_attempts = 8\nretry_base = 0.05\nretry_max_wait = 0.5\n"
        "breaker_threshold = 1000",
    )
    shipper = Shipper(parse(text))
    try:
        # rotations and passes interleave, as in `run`: 6 rounds of 5 binlogs
        for _ in range(6):
            rotate(server, 5, rows=20)
            shipper.run_once()
        for _ in range(5):  # what a pass held back (a target down for it) goes next pass
            if not shipper.manifest.pending():
                break
            shipper.run_once()
        names = closed_binlogs(server)
        assert len(names) >= 30
        rows = {r.name: r for r in shipper.manifest.all()}
        assert all(rows[n].state == "committed" for n in names), {
            n: (rows[n].state, rows[n].error) for n in names if rows[n].state != "committed"
        }
        # committed in order: a later binlog never committed before an earlier one
        committed = sorted((rows[n] for n in names), key=lambda r: r.sequence)
        stamps = [r.committed_at or 0 for r in committed]
        assert stamps == sorted(stamps)
        # each on both clouds, exactly once (one version on the versioned bucket)
        versions = moto.s3.list_object_versions(Bucket=s3_bucket)["Versions"]
        assert binlog_objects(v["Key"] for v in versions) == Counter(dict.fromkeys(names, 1))
        blobs = fake_gcs.client().list_blobs(gs_bucket)
        assert binlog_objects(b.name for b in blobs) == Counter(dict.fromkeys(names, 1))
        for n in names:
            assert set(shipper.manifest.placements(n)) == {
                f"s3://{s3_bucket}/arch",
                f"gs://{gs_bucket}/arch",
            }
        counted = _failures_by_code(shipper)
    finally:
        shipper.close()
    injected = s3p.injected + gsp.injected
    assert sum(injected.values()) >= 50, injected
    # Every fault the proxy injected on an object request reached the shipper as a
    # counted failure. (Faults on "does the bucket exist?", which a backend asks after
    # a 404 to word its error, are not storage calls of the shipper's: they only mean
    # "cannot tell", and the 404 stands.)
    faults = [r for p in (s3p, gsp) for r in p.log if not r.endswith(" -")]
    on_objects = [r for r in faults if not _bucket_only(r.split()[1])]
    # Answers (429/503) and resets are counted exactly once each. Timeouts are counted
    # at least once per injected stall: on a loaded machine the emulator itself can be
    # slower than the client's 1 s read timeout, and that real timeout is counted too.
    stalls = sum(1 for r in on_objects if r.endswith(" stall"))
    timeouts = sum(n for code, n in counted.items() if "Timeout" in code)
    assert sum(counted.values()) - timeouts == len(on_objects) - stalls, (counted, on_objects)
    assert timeouts >= stalls, (counted, on_objects)
    assert {"SlowDown", "TooManyRequests", "503", "429"} <= set(counted), counted
    assert any("Timeout" in c for c in counted), counted  # the stalls
    assert any("Connection" in c for c in counted), counted  # the resets


def _bucket_only(path: str) -> bool:
    """S3 ``/bucket`` or GCS ``/storage/v1/b/bucket`` (no object in the path)."""
    path = path.split("?")[0].rstrip("/")
    if path.startswith("/storage/v1/b/"):
        return "/o" not in path[len("/storage/v1/b/") :]
    return path.count("/") == 1


def _failures_by_code(shipper: Shipper) -> Counter[str]:
    out: Counter[str] = Counter()
    for metric in shipper.metrics.registry.collect():
        if metric.name == "binlog_shipper_storage_errors":
            for s in metric.samples:
                if s.name.endswith("_total") and s.labels["transient"] == "true":
                    out[s.labels["error_code"]] += int(s.value)
    return out


def test_permanent_errors_surface_at_once(
    moto: Moto, moto_auth: MotoAuth, fake_gcs: FakeGcs
) -> None:
    """A missing bucket, access denied and metadata too large are not retried: one
    request each (none for the metadata), through the retry wrapper every backend
    from open_backend gets."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    with (
        FaultProxy(moto.endpoint_url) as s3p,
        FaultProxy(fake_gcs.endpoint_url, flavor="gcs") as gsp,
        FaultProxy(moto_auth.endpoint_url) as authp,
    ):
        s3 = open_backend(
            "s3://no-such-bucket-here/p", {"endpoint_url": s3p.url, "region": "us-east-1"}
        )
        client = storage.Client(
            project="p",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": gsp.url},
        )
        gs = open_backend("gs://no-such-bucket-here/p", {"client": client})
        for backend, proxy in ((s3, s3p), (gs, gsp)):
            assert isinstance(backend, RetryingBackend)
            with pytest.raises(ObjectNotFound, match="bucket no-such-bucket-here"):
                backend.put("k", io.BytesIO(b"x"), size=1, metadata={})
            writes = [r for r in proxy.log if r.startswith(("PUT", "POST"))]
            assert len(writes) == 1, proxy.log  # (a GET may ask whether the bucket exists)

        denied = open_backend(
            f"s3://{moto.bucket()}/p",
            {"client": Moto(endpoint_url=authp.url).client("s3", **moto_auth.allowed)},
        )
        with pytest.raises(PermissionDenied):
            denied.put("k", io.BytesIO(b"x"), size=1, metadata={})
        assert authp.requests == 1

        with pytest.raises(StorageError, match="metadata") as e:
            open_backend(
                f"s3://{moto.bucket()}/p", {"endpoint_url": s3p.url, "region": "us-east-1"}
            ).put("k", io.BytesIO(b"x"), size=1, metadata={"big": "x" * 4000})
        assert not e.value.transient
        assert s3p.requests == 1  # refused before any request


def test_blackholed_endpoint_times_out_and_opens_the_circuit(
    mariadb_factory,  # type: ignore[no-untyped-def]
    moto: Moto,  # for its test credentials in the environment
    tmp_path: Path,
) -> None:
    """moto in a network namespace of the test's own; its link taken down, so requests
    hang (no refusal, no HTTP error): the client times out, the circuit opens, the pass
    ends and leaves no thread behind."""
    import sys
    import threading

    from shipper.storage.breaker import OPEN
    from tests.services.cloud import _wait_http
    from tests.services.netns import Netns

    moto_bin = str(Path(sys.executable).with_name("moto_server"))
    with Netns() as ns:
        port = 5000
        proc = ns.start([moto_bin, "-H", ns.addr, "-p", str(port)])
        endpoint = f"http://{ns.addr}:{port}"
        _wait_http(f"{endpoint}/", proc)
        bucket = Moto(endpoint_url=endpoint).bucket()
        server = mariadb_factory(server_id=63)
        s3 = f"s3://{bucket}/a"
        text = config(
            tmp_path / "state",
            server,
            s3=(s3, endpoint),
            routing='primary = "aws"',
            resilience="breaker_threshold = 1\nbreaker_cooldown = 3600\n"
            "retry_attempts = 2\nretry_base = 0.01",
        )
        shipper = Shipper(parse(text))
        try:
            rotate(server, 1, rows=20)
            assert shipper.run_once().ok  # reachable: shipped
        finally:
            shipper.close()

        ns.blackhole()
        rotate(server, 1, rows=20)
        before = set(threading.enumerate())
        box: dict[str, Any] = {}

        def one_pass() -> None:  # a restarted shipper (its manifest is its thread's own)
            sh = Shipper(parse(text))
            try:
                box["res"] = sh.run_once()
                box["state"] = sh.resilient.breakers[s3].state
                box["counted"] = _failures_by_code(sh)
            finally:
                sh.close()

        t = threading.Thread(target=one_pass, daemon=True)
        t.start()
        # each call ends at connect_timeout = read_timeout = 1 s, times 2 attempts; the
        # bound here is only how long the test waits before calling the pass stuck
        t.join(timeout=120)
        assert not t.is_alive(), "the pass is stuck on a black-holed endpoint"
        res = box["res"]
        assert not res.ok and res.blocked == closed_binlogs(server)[-1:]
        assert box["state"] == OPEN
        assert box["counted"], box
        assert set(box["counted"]) <= {"ConnectTimeoutError", "ReadTimeoutError"}, box
        left = [th for th in set(threading.enumerate()) - before if th.is_alive()]
        assert not left, left
        # the open circuit outlives the process: the next shipper does not wait again
        shipper = Shipper(parse(text))
        try:
            assert shipper.resilient.breakers[s3].state == OPEN
        finally:
            shipper.close()


@pytest.fixture()
def moto_iam(tmp_path: Path) -> Iterator[tuple[Moto, dict[str, str], str]]:
    """A moto server of this test's own with IAM enforced: (server, admin credentials,
    bucket). The user "shipper" may use the bucket; the admin rotates its keys."""
    import json
    import os
    import subprocess
    import sys

    from tests.services.cloud import _wait_http, free_port

    port = free_port()
    setup = 6  # the AWS actions below, before enforcement starts
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(setup)}
    with (tmp_path / "moto.log").open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        m = Moto(endpoint_url=f"http://127.0.0.1:{port}")
        _wait_http(f"{m.endpoint_url}/moto-api/", proc)
        iam = m.client("iam")
        bucket = "rotation-bucket"
        allow_all = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
        for user in ("admin", "shipper"):
            iam.create_user(UserName=user)
            iam.put_user_policy(
                UserName=user, PolicyName="all", PolicyDocument=json.dumps(allow_all)
            )
        key = iam.create_access_key(UserName="admin")["AccessKey"]
        m.s3.create_bucket(Bucket=bucket)
        admin = {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }
        yield m, admin, bucket
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_credential_rotation_is_picked_up_without_a_restart(
    mariadb_factory,  # type: ignore[no-untyped-def]
    moto_iam: tuple[Moto, dict[str, str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The access key in use is replaced while one shipper keeps running (moto's IAM:
    a new key, the old one deactivated, the credentials file rewritten): it signs with
    the new key from the next call on; the failures in between are retried; nothing is
    lost or duplicated."""
    m, admin, bucket = moto_iam
    iam = m.client("iam", **admin)
    creds = tmp_path / "aws-credentials"

    def new_key() -> str:
        k = iam.create_access_key(UserName="shipper")["AccessKey"]
        creds.write_text(
            f"[default]\naws_access_key_id = {k['AccessKeyId']}\n"
            f"aws_secret_access_key = {k['SecretAccessKey']}\n"
        )
        return str(k["AccessKeyId"])

    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    old = new_key()
    server = mariadb_factory(server_id=64)
    s3 = f"s3://{bucket}/a"
    text = config(
        tmp_path / "state",
        server,
        s3=(s3, m.endpoint_url),
        routing='primary = "aws"',
        resilience="retry_attempts = 3\nretry_base = 0.01",
    )
    shipper = Shipper(parse(text))
    try:
        rotate(server, 2, rows=20)
        assert shipper.run_once().ok

        # the old key is deactivated before the file holds the new one: that pass fails
        # (the target is reported down, its binlog stays pending), nothing is committed
        iam.update_access_key(UserName="shipper", AccessKeyId=old, Status="Inactive")
        # moto's auth ignores a key's status (moto/iam/access_control.py looks keys up
        # by id only); deleting it is what makes moto refuse it, as AWS refuses both
        iam.delete_access_key(UserName="shipper", AccessKeyId=old)
        rotate(server, 2, rows=20)
        res = shipper.run_once()
        assert not res.ok and len(res.blocked) == 2
        assert "check the credentials" in next(iter(res.targets_down.values())).error

        new = new_key()  # the file is rewritten; the same shipper keeps going
        rotate(server, 2, rows=20)
        assert shipper.run_once().ok
        names = closed_binlogs(server)
        assert [r.name for r in shipper.manifest.all() if r.state == "committed"] == names
        listed = m.client("s3", **admin).list_objects_v2(Bucket=bucket)["Contents"]
        assert binlog_objects(o["Key"] for o in listed) == dict.fromkeys(names, 1)
        assert new != old
    finally:
        shipper.close()


def test_gcs_key_rotation_is_picked_up_without_a_restart(
    mariadb_factory,  # type: ignore[no-untyped-def]
    gcs_iam: GcsIam,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same for a replaced service-account key file. google-auth signs its JWT with
    the file's private key for the token endpoint of tests/services/gauth.py, and the
    proxy in front of fake-gcs-server lets only that endpoint's live tokens through. The
    key in use is deleted (its tokens refused) while one shipper keeps running: a pass
    fails cleanly; the file is replaced with a new key at the same path; the same
    shipper's next pass signs with it; nothing is lost or duplicated."""
    auth = gcs_iam.auth
    key_file = tmp_path / "sa-key.json"
    old = auth.create_key()
    write_key_file(key_file, old)
    # real credentials against the target's own endpoint, not the anonymous emulator
    monkeypatch.delenv("STORAGE_EMULATOR_HOST", raising=False)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    server = mariadb_factory(server_id=65)
    bucket = gcs_iam.gcs.bucket()
    gs = f"gs://{bucket}/a"
    text = config(
        tmp_path / "state",
        server,
        gs=gs,
        gs_options=f'endpoint_url = "{gcs_iam.endpoint_url}"',
        routing='primary = "gcp"',
        resilience="retry_attempts = 3\nretry_base = 0.01",
    )

    def archived() -> Counter[str]:
        return binlog_objects(b.name for b in gcs_iam.gcs.client().list_blobs(bucket))

    shipper = Shipper(parse(text))
    try:
        rotate(server, 2, rows=20)
        assert shipper.run_once().ok
        shipped = closed_binlogs(server)
        assert set(auth.grants) == {old["private_key_id"]}

        # the key is deleted in IAM before the file holds a new one: that pass fails (the
        # target is reported down, its binlogs stay pending), nothing is committed
        auth.revoke(old["private_key_id"])
        rotate(server, 2, rows=20)
        res = shipper.run_once()
        assert not res.ok and len(res.blocked) == 2
        error = next(iter(res.targets_down.values())).error
        assert "the credentials were refused" in error and "invalid_grant" in error
        assert old["private_key_id"] in error and str(key_file) in error
        assert [r.name for r in shipper.manifest.all() if r.state == "committed"] == shipped
        assert archived() == dict.fromkeys(shipped, 1)
        assert _failures_by_code(shipper) == {}  # refused, not retried

        new = auth.create_key()  # the file is replaced; the same shipper keeps going
        write_key_file(key_file, new)
        rotate(server, 2, rows=20)
        with caplog.at_level(logging.WARNING, logger="shipper.storage.gcs_auth"):
            assert shipper.run_once().ok
        assert "changed (rotated" in caplog.text
        assert auth.grants[-1] == new["private_key_id"]
        # the calls refused after the file was replaced (at most one per worker: each
        # may meet the old client before one of them rebuilds it) were retried with the
        # new key
        refused = _failures_by_code(shipper)
        assert set(refused) == {"RefreshError"}
        assert 1 <= refused["RefreshError"] <= shipper.cfg.workers
        names = closed_binlogs(server)
        assert [r.name for r in shipper.manifest.all() if r.state == "committed"] == names
        assert archived() == dict.fromkeys(names, 1)
    finally:
        shipper.close()
