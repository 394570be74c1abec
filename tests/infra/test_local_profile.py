"""End to end: samplerepo/local ships a real MariaDB's binlogs to the
emulators, each tenant to its primary cloud, and `fetch` gets them back."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from shipper.cli import main as cli
from shipper.keys.local import LocalKeyring
from tests.helpers import closed_binlogs, rotate
from tests.infra.tftree import ROOT
from tests.services.cloud import FakeGcs, Moto

pytestmark = pytest.mark.mariadb

LOCAL = ROOT / "samplerepo" / "local"


def _emulators() -> ModuleType:
    spec = importlib.util.spec_from_file_location("samplerepo_emulators", LOCAL / "emulators.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _local_config(tenant: str, tmp: Path, socket: Path, moto: Moto) -> Path:
    """The profile as it is, with this test's paths and emulator port."""
    text = (LOCAL / f"{tenant}.toml").read_text()
    text = text.replace("/tmp/binlog-shipper-local/mysqld.sock", str(socket))
    text = text.replace("/tmp/binlog-shipper-local", str(tmp))
    text = text.replace("http://127.0.0.1:5000", moto.endpoint_url)
    (tmp / tenant).mkdir(parents=True)
    LocalKeyring.create(tmp / tenant / "keyring")
    path = tmp / f"{tenant}.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(("tenant", "server_id"), [("shop", 91), ("ledger", 92)])
def test_local_profile_ships_each_tenant_to_its_primary(
    mariadb_factory,  # type: ignore[no-untyped-def]
    moto: Moto,
    fake_gcs: FakeGcs,
    tmp_path: Path,
    tenant: str,
    server_id: int,
) -> None:
    emu = _emulators()
    gcs = fake_gcs.client()
    emu.provision(moto.s3, moto.kms, gcs)
    server = mariadb_factory(server_id=server_id)
    rotate(server, 2)
    cfg = _local_config(tenant, tmp_path, server.socket_path, moto)

    assert cli(["run", "--once", "--config", str(cfg)]) == 0

    prefix = f"{tenant}/mysql/{server_id}/"
    s3_keys = [
        o["Key"]
        for o in moto.s3.list_objects_v2(Bucket=emu.S3_BUCKET, Prefix=prefix).get("Contents", [])
    ]
    gcs_keys = [b.name for b in gcs.list_blobs(emu.GCS_BUCKET, prefix=prefix)]
    names = closed_binlogs(server)
    primary_keys, other_keys = (s3_keys, gcs_keys) if tenant == "shop" else (gcs_keys, s3_keys)
    for name in names:
        assert any(k.endswith(f"/{name}.zst.enc") for k in primary_keys), (name, primary_keys)
    # the other cloud is the fallback, written by the functions, not the host
    assert other_keys == []

    out = tmp_path / "out" / names[0]
    assert cli(["fetch", names[0], "-o", str(out), "--config", str(cfg)]) == 0
    assert (
        hashlib.sha256(out.read_bytes()).digest()
        == hashlib.sha256((server.binlog_dir / names[0]).read_bytes()).digest()
    )
