"""Static checks of infra/terraform and samplerepo (the gate, since no
Terraform binary or provider can be installed here; see
infra/terraform/README.md)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.infra.tftree import (
    ROOT,
    Module,
    call_problems,
    load_module,
    modules,
    parse_file,
    source_problems,
    tf_files,
)

FILES = tf_files()
MODULES = modules()


def _id(p: Path) -> str:
    return str(p.relative_to(ROOT))


def test_the_tree_has_the_three_modules_and_two_roots() -> None:
    found = {_id(m.path) for m in MODULES}
    assert {
        "infra/terraform/modules/aws-archive",
        "infra/terraform/modules/gcp-archive",
        "infra/terraform/modules/tenant/aws",
        "infra/terraform/modules/tenant/gcp",
        "samplerepo/aws",
        "samplerepo/gcp",
    } <= found


@pytest.mark.parametrize("path", FILES, ids=_id)
def test_every_tf_file_parses(path: Path) -> None:
    doc = parse_file(path)
    assert doc, f"{_id(path)} holds no block"


@pytest.mark.parametrize("module", MODULES, ids=lambda m: _id(m.path))
def test_module_sources_are_local_and_resolve(module: Module) -> None:
    assert source_problems(module) == []


@pytest.mark.parametrize("module", MODULES, ids=lambda m: _id(m.path))
def test_module_calls_pass_only_declared_variables_and_all_required_ones(module: Module) -> None:
    assert call_problems(module) == []


def test_the_module_checks_catch_a_remote_source_a_typo_and_a_missing_variable(
    tmp_path: Path,
) -> None:
    child = tmp_path / "modules" / "child"
    child.mkdir(parents=True)
    (child / "variables.tf").write_text(
        'variable "needed" {\n  type = string\n  description = "d"\n}\n'
        'variable "optional" {\n  type = string\n  description = "d"\n  default = ""\n}\n'
    )
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text(
        'module "ok" {\n  source = "../modules/child"\n  needed = "x"\n}\n'
        'module "typo" {\n  source = "../modules/child"\n  needed = "x"\n  optinal = "y"\n}\n'
        'module "short" {\n  source = "../modules/child"\n}\n'
        'module "remote" {\n  source = "git::https://example.com/m.git"\n}\n'
        'module "gone" {\n  source = "../modules/nothing"\n}\n'
    )
    m = load_module(root)
    sources = source_problems(m)
    assert len(sources) == 2
    assert any('"remote"' in p and "not local" in p for p in sources)
    assert any('"gone"' in p and "does not resolve" in p for p in sources)
    calls = call_problems(m)
    assert len(calls) == 2
    assert any('"typo" passes optinal' in p for p in calls)
    assert any('"short" does not pass required needed' in p for p in calls)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: _id(m.path))
def test_every_variable_has_a_type_and_a_description(module: Module) -> None:
    for name, body in module.variables.items():
        assert body.get("type"), f'{_id(module.path)}: variable "{name}" has no type'
        assert str(body.get("description", "")).strip(), (
            f'{_id(module.path)}: variable "{name}" has no description'
        )


# Variables of the reusable modules that have no validation, and why none fits.
NO_VALIDATION = {
    "tags": "free-form map",
    "labels": "free-form map",
    "lock_retention_policy": "a bool: both values are valid",
}


@pytest.mark.parametrize("module", [m for m in MODULES if not m.is_root], ids=lambda m: _id(m.path))
def test_module_variables_are_validated(module: Module) -> None:
    for name, body in module.variables.items():
        if name in NO_VALIDATION:
            continue
        assert body.get("validation"), (
            f'{_id(module.path)}: variable "{name}" has no validation block'
        )


@pytest.mark.parametrize("module", MODULES, ids=lambda m: _id(m.path))
def test_every_output_has_a_description(module: Module) -> None:
    for name, body in module.outputs.items():
        assert str(body.get("description", "")).strip(), (
            f'{_id(module.path)}: output "{name}" has no description'
        )


@pytest.mark.parametrize("module", [m for m in MODULES if not m.is_root], ids=lambda m: _id(m.path))
def test_reusable_modules_configure_no_provider_and_pin_versions(module: Module) -> None:
    has_terraform_block = False
    for f, doc in module.docs:
        assert "provider" not in doc, f"{_id(f)} configures a provider: only roots may"
        for tf in doc.get("terraform", []):
            has_terraform_block = True
            assert tf.get("required_version"), f"{_id(f)}: no required_version"
            for entry in tf.get("required_providers", []):
                for pname, spec in entry.items():
                    assert isinstance(spec, dict) and spec.get("version"), (
                        f"{_id(f)}: provider {pname} has no version constraint"
                    )
    assert has_terraform_block, f"{_id(module.path)} has no terraform {{}} block"


def test_every_tenant_config_snippet_output_exists() -> None:
    for sub in ("aws", "gcp"):
        m = load_module(ROOT / "infra/terraform/modules/tenant" / sub)
        assert "config_snippet" in m.outputs
    for root in ("aws", "gcp"):
        m = load_module(ROOT / "samplerepo" / root)
        value = str(m.outputs["config_snippets"]["value"])
        assert "shop" in value and "ledger" in value


def test_inline_checkov_skips_say_why() -> None:
    pattern = re.compile(r"checkov:skip=([A-Z0-9_]+)(:?)(.*)")
    seen = 0
    for f in FILES:
        for line in f.read_text().splitlines():
            m = pattern.search(line)
            if m:
                seen += 1
                assert m[2] == ":" and len(m[3].strip()) > 20, (
                    f"{_id(f)}: skip of {m[1]} gives no reason: {line.strip()}"
                )
    assert seen, "no inline skip found: is the pattern still right?"


def test_checkov_config_skips_say_why() -> None:
    lines = (ROOT / "infra/terraform/checkov.yaml").read_text().splitlines()
    start = lines.index("skip-check:")
    for i in range(start + 1, len(lines)):
        line = lines[i].strip()
        if line.startswith("- "):
            assert lines[i - 1].strip().startswith("#"), (
                f"skip {line[2:]} in .checkov.yaml has no comment saying why"
            )
        elif line and not line.startswith("#"):
            break


def test_terraform_files_are_formatted() -> None:
    """`terraform fmt` needs no provider; run it where a terraform binary exists."""
    import shutil
    import subprocess

    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("no terraform binary on PATH (none can be downloaded here)")
    proc = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-list=true", "infra/terraform", "samplerepo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={
            "TF_CLI_CONFIG_FILE": "/dev/null",
            "CHECKPOINT_DISABLE": "1",  # no version check over the network
            "PATH": "/usr/bin:/bin",
            "HOME": "/nonexistent",
        },
    )
    assert proc.returncode == 0, f"not formatted (run terraform fmt -recursive): {proc.stdout}"
