"""samplerepo/: the shipper configs load, the local profile is the same
config pointed at the emulators, and the systemd unit runs a command the CLI
accepts."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

import pytest

from shipper import config as config_mod
from tests.infra.tftree import ROOT

SAMPLE = ROOT / "samplerepo"
TENANTS = {"shop": "aws", "ledger": "gcp"}


@pytest.mark.parametrize("tenant", sorted(TENANTS))
@pytest.mark.parametrize("profile", ["config", "local"])
def test_sample_config_loads(profile: str, tenant: str) -> None:
    cfg = config_mod.load(SAMPLE / profile / f"{tenant}.toml")
    assert cfg.tenant == tenant
    assert cfg.primary == TENANTS[tenant]
    # the primary's target comes first, the other cloud's is the fallback
    assert next(t.cloud for t in cfg.targets) == TENANTS[tenant]
    assert {t.cloud for t in cfg.targets} == {"aws", "gcp"}
    # bare bucket URLs: object keys start with the tenant, which IAM binds
    assert all(t.url.count("/") == 2 for t in cfg.targets), [t.url for t in cfg.targets]


@pytest.mark.parametrize("tenant", sorted(TENANTS))
def test_local_profile_is_the_cloud_config_pointed_at_the_emulators(tenant: str) -> None:
    cloud = config_mod.load(SAMPLE / "config" / f"{tenant}.toml")
    local = config_mod.load(SAMPLE / "local" / f"{tenant}.toml")
    assert (local.tenant, local.primary, local.direct_dual, local.verify) == (
        cloud.tenant,
        cloud.primary,
        cloud.direct_dual,
        cloud.verify,
    )
    assert [t.cloud for t in local.targets] == [t.cloud for t in cloud.targets]
    for t in local.targets:
        if t.cloud == "aws":
            assert str(t.options["endpoint_url"]).startswith("http://127.0.0.1:")
    # GCP KMS has no emulator: the local keyring takes the gcp-kms key's place
    swap = {"gcp-kms": "local"}
    assert [swap.get(k["provider"], k["provider"]) for k in cloud.keys] == [
        k["provider"] for k in local.keys
    ]


def _exec_start(unit: Path) -> list[str]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(unit.read_text())
    return parser["Service"]["ExecStart"].split()


def test_systemd_unit_runs_a_command_the_cli_accepts() -> None:
    argv = _exec_start(SAMPLE / "systemd" / "binlog-shipper@.service")
    assert Path(argv[0]).name == "binlog-shipper"
    sub, flags = argv[1], [a for a in argv[2:] if a.startswith("-")]
    out = subprocess.run(
        [sys.executable, "-m", "shipper", sub, "--help"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    for flag in flags:
        assert flag in out, f"`binlog-shipper {sub}` has no {flag}"


def test_systemd_unit_keeps_the_product_units_command_and_sandbox() -> None:
    product = ROOT / "docs" / "systemd" / "binlog-shipper.service"
    if not product.exists():
        pytest.skip("docs/systemd/binlog-shipper.service is written by the errors issue")
    sample = SAMPLE / "systemd" / "binlog-shipper@.service"
    assert _exec_start(sample)[1] == _exec_start(product)[1]

    def directives(unit: Path) -> set[str]:
        return {
            line.split("=", 1)[0]
            for line in unit.read_text().splitlines()
            if "=" in line and not line.lstrip().startswith("#")
        }

    # every hardening directive of the product unit is in the sample too
    hardening = {d for d in directives(product) if d.startswith(("Protect", "Restrict", "Private"))}
    assert hardening <= directives(sample)


@pytest.mark.parametrize(("tenant", "primary"), [("shop", "aws"), ("ledger", "gcp")])
def test_config_snippet_template_renders_a_config_the_shipper_loads(
    tenant: str, primary: str, tmp_path: Path
) -> None:
    """The tenant modules' config_snippet, rendered by `terraform console`
    (templatefile needs no provider), plus a [mysql] table, is a valid config."""
    import shutil

    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("no terraform binary on PATH (none can be downloaded here)")
    s3 = '{ url = "s3://example-binlog-archive-aws", region = "eu-west-1" }'
    gs = '{ url = "gs://example-binlog-archive-gcp", region = "" }'
    targets = f"[{s3}, {gs}]" if primary == "aws" else f"[{gs}, {s3}]"
    keys = (
        '[{ provider = "aws-kms", key = "arn:aws:kms:eu-west-1:111111111111:key/k",'
        ' region = "eu-west-1" },'
        ' { provider = "gcp-kms", key = "projects/p/locations/l/keyRings/r/cryptoKeys/k",'
        ' region = "" }]'
    )
    template = ROOT / "infra/terraform/modules/tenant/config.toml.tftpl"
    expr = (
        f'templatefile("{template}", {{ tenant = "{tenant}", primary = "{primary}",'
        f' targets = {targets}, keys = {keys}, identity = "test" }})'
    )
    proc = subprocess.run(
        [terraform, "console"],
        input=expr + "\n",
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
        env={
            "TF_CLI_CONFIG_FILE": "/dev/null",
            "CHECKPOINT_DISABLE": "1",  # no version check over the network
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
        },
    )
    out = proc.stdout.strip()
    assert out.startswith("<<EOT") and out.endswith("EOT"), out
    text = out.removeprefix("<<EOT").removesuffix("EOT")
    cfg_path = tmp_path / f"{tenant}.toml"
    cfg_path.write_text(text + '\n[mysql]\nsocket = "/run/mysqld/mysqld.sock"\n')
    cfg = config_mod.load(cfg_path)
    sample = config_mod.load(SAMPLE / "config" / f"{tenant}.toml")
    assert (cfg.tenant, cfg.primary) == (tenant, primary)
    assert [t.url for t in cfg.targets] == [t.url for t in sample.targets]
    assert [k["provider"] for k in cfg.keys] == [k["provider"] for k in sample.keys]
