"""End to end: a real MariaDB ships to moto S3 and fake GCS at once (direct_dual),
and `fetch` restores every binlog byte-identical from either cloud."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from shipper.cli import main as cli
from shipper.keys.local import LocalKeyring
from shipper.manifest import Manifest
from shipper.sandbox import SandboxServer
from tests.helpers import closed_binlogs, rotate
from tests.services.cloud import FakeGcs, Moto

pytestmark = pytest.mark.mariadb


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _config(
    state: Path,
    server: SandboxServer,
    s3_url: str,
    gs_url: str,
    moto: Moto,
    kms_key: str,
    *,
    local_key: bool = True,
) -> None:
    state.mkdir(parents=True, exist_ok=True)
    keyring = state / "keyring"
    if local_key and not keyring.exists():
        LocalKeyring.create(keyring)
    local = f'[[keys]]\nprovider = "local"\npath = "{keyring}"\n' if local_key else ""
    (state / "config.toml").write_text(f"""
tenant = "acme"
state_dir = "{state}"
verify = "full"

[mysql]
socket = "{server.socket_path}"
user = "root"

[routing]
primary = "aws"
direct_dual = true

[[targets]]
url = "{s3_url}"
endpoint_url = "{moto.endpoint_url}"
region = "{moto.region}"

[[targets]]
url = "{gs_url}"

{local}
[[keys]]
provider = "aws-kms"
key_id = "{kms_key}"
region = "{moto.region}"
endpoint_url = "{moto.endpoint_url}"
""")


def test_ship_to_both_clouds_and_fetch_from_either(
    mariadb_factory,
    moto: Moto,
    fake_gcs: FakeGcs,
    tmp_path: Path,  # type: ignore[no-untyped-def]
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = mariadb_factory(server_id=31)
    rotate(server, 3)
    s3_bucket = moto.bucket(versioning=True)
    s3_url, gs_url = f"s3://{s3_bucket}/archive", f"gs://{fake_gcs.bucket()}/archive"
    kms_key = moto.kms_key()
    state = tmp_path / "state"
    _config(state, server, s3_url, gs_url, moto, kms_key)

    # dry run: both targets checked, nothing denied, nothing written
    capsys.readouterr()
    assert cli(["run", "--dry-run", "--state-dir", str(state)]) == 0
    doc = json.loads(capsys.readouterr().out)
    targets = {c["target"] for c in doc["checks"]}
    assert {s3_url, gs_url} <= targets
    assert not [c for c in doc["checks"] if c["status"] == "denied"]
    assert moto.s3.list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0

    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    names = closed_binlogs(server)
    assert len(names) >= 3
    with Manifest(state / "manifest.sqlite") as m:
        assert {r.name: r.state for r in m.all()} == dict.fromkeys(names, "committed")

    for url in (s3_url, gs_url):
        for name in names:
            out = tmp_path / "out" / url.split(":")[0] / name
            assert (
                cli(["fetch", name, "-o", str(out), "--from", url, "--state-dir", str(state)]) == 0
            )
            assert sha(out) == sha(server.binlog_dir / name), (url, name)

    # Either cloud alone: with the local keyring gone, AWS KMS still unwraps,
    # reading from GCS as well as from S3.
    kms_only = tmp_path / "kms-only"
    _config(kms_only, server, s3_url, gs_url, moto, kms_key, local_key=False)
    name = names[0]
    for url in (gs_url, s3_url):
        out = tmp_path / "kms" / url.split(":")[0] / name
        assert (
            cli(["fetch", name, "-o", str(out), "--from", url, "--state-dir", str(kms_only)]) == 0
        )
        assert sha(out) == sha(server.binlog_dir / name)

    # A second pass is idempotent: nothing new, nothing overwritten.
    versions = moto.s3.list_object_versions(Bucket=s3_bucket).get("Versions", [])
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    assert moto.s3.list_object_versions(Bucket=s3_bucket).get("Versions", []) == versions


def test_dry_run_exits_non_zero_when_a_check_is_denied(
    mariadb_factory,  # type: ignore[no-untyped-def]
    moto: Moto,
    fake_gcs: FakeGcs,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bucket that does not exist: `run --dry-run` says which check failed and exits 1;
    `run --once` then fails too (exit 8), and nothing is marked committed."""
    server = mariadb_factory(server_id=32)
    rotate(server, 2)
    state = tmp_path / "state"
    missing = "s3://no-such-bucket-here/archive"
    _config(state, server, missing, f"gs://{fake_gcs.bucket()}/a", moto, moto.kms_key())
    capsys.readouterr()
    assert cli(["run", "--dry-run", "--state-dir", str(state)]) == 1
    doc = json.loads(capsys.readouterr().out)
    denied = [c for c in doc["checks"] if c["status"] == "denied"]
    assert denied and all(c["target"] == missing for c in denied)
    assert "no-such-bucket-here" in " ".join(c["detail"] for c in denied)
    assert cli(["run", "--once", "--state-dir", str(state)]) == 8  # a storage failure
    assert "no-such-bucket-here" in capsys.readouterr().out
    with Manifest(state / "manifest.sqlite") as m:
        assert not [r for r in m.all() if r.state in ("uploaded", "verified", "committed")]


def test_auto_verification_on_cloud_targets_is_ranged(
    mariadb_factory,  # type: ignore[no-untyped-def]
    moto: Moto,
    fake_gcs: FakeGcs,
    tmp_path: Path,
) -> None:
    """verify = "auto" on s3/gs proves each object from its header and first chunk; a
    tampered first chunk is caught by that check."""
    from dataclasses import replace

    from shipper.config import load
    from shipper.errors import IntegrityError
    from shipper.pipeline.ship import Shipper

    server = mariadb_factory(server_id=33)
    rotate(server, 2)
    state = tmp_path / "state"
    s3_url = f"s3://{moto.bucket()}/a"
    _config(state, server, s3_url, f"gs://{fake_gcs.bucket()}/a", moto, moto.kms_key())
    cfg = replace(load(state / "config.toml"), verify="auto")
    shipper = Shipper(cfg)
    assert shipper.run_once().ok
    s3 = next(b for b in shipper.backends if b.url == s3_url)
    row = shipper.manifest.get(closed_binlogs(server)[0])
    assert row is not None and row.object_key
    good = s3.open(row.object_key).read()
    shipper.writer.verify_prefix(s3, row.object_key, len(good))
    bad = bytearray(good)
    bad[len(bad) - 30] ^= 1  # inside the first (here: only) chunk
    bucket, prefix = s3_url[5:].split("/", 1)
    moto.s3.put_object(Bucket=bucket, Key=f"{prefix}/tampered", Body=bytes(bad))
    with pytest.raises(IntegrityError):
        shipper.writer.verify_prefix(s3, "tampered", len(bad))
    shipper.close()
