"""The docs a new user follows say what the code does: exit codes, the systemd unit."""

from __future__ import annotations

import configparser
import inspect
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from shipper import errors
from shipper.cli import EXIT_BROKEN_PIPE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OS_ERROR

ROOT = Path(__file__).parents[2]
UNIT = ROOT / "docs" / "systemd" / "binlog-shipper.service"


ROW_START = {
    "ConfigError": "configuration",
    "IntegrityError": "integrity",
    "ObjectNotFound": "not found",
    "PreconditionFailed": "precondition",
    "BinlogFormatError": "binlog format",
    "KeyProviderError": "key provider",
    "StorageError": "storage",
    "PermissionDenied": "storage: a backend failed (including permission denied",
    "StateError": "state dir",
    "DatabaseError": "database",
    "LineageConflict": "lineage conflict",
    "RestoreError": "restore",
}


def readme_exit_codes() -> dict[int, str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Exit codes and errors", 1)[1].split("\n## ", 1)[0]
    return {
        int(m["code"]): m["meaning"]
        for m in re.finditer(r"^\| (?P<code>\d+) \| (?P<meaning>.+) \|$", section, re.M)
    }


def test_readme_exit_code_table_matches_errors_py() -> None:
    documented = readme_exit_codes()
    classes = [
        c
        for _, c in inspect.getmembers(errors, inspect.isclass)
        if issubclass(c, errors.ShipperError) and c is not errors.ShipperError
    ]
    codes = {c.exit_code for c in classes}
    cli_codes = {EXIT_INTERNAL, EXIT_OS_ERROR, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE}
    assert set(documented) == {0, errors.ShipperError.exit_code} | codes | cli_codes
    # each class's row starts with its kind: a new error class must be documented
    for c in classes:
        assert documented[c.exit_code].startswith(ROW_START[c.__name__]), c.__name__


def unit() -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are CamelCase
    cp.read(UNIT)
    return cp


def run_help() -> str:
    res = subprocess.run(
        [sys.executable, "-m", "shipper", "run", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    return res.stdout


def test_systemd_unit_runs_a_real_subcommand_with_real_options() -> None:
    svc = unit()["Service"]
    argv = shlex.split(svc["ExecStart"])
    assert Path(argv[0]).name == "binlog-shipper"
    assert argv[1] == "run"
    options = [a for a in argv[2:] if a.startswith("-")]
    assert options, "the unit names its state dir or config"
    documented = run_help()
    for opt in options:
        assert re.search(rf"(^|[\s,\[]){re.escape(opt)}\b", documented), opt
    # each option's value is an absolute path the sandbox lets it write or read
    state = argv[argv.index("--state-dir") + 1]
    assert state in svc["ReadWritePaths"].split()


@pytest.mark.parametrize(
    ("key", "want"),
    [
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectHome", "yes"),
        ("CapabilityBoundingSet", ""),
        ("User", "binlog-shipper"),
        ("SupplementaryGroups", "mysql"),
        ("Restart", "on-failure"),
        ("ReadWritePaths", "/var/lib/binlog-shipper"),
    ],
)
def test_systemd_unit_sandboxing(key: str, want: str) -> None:
    assert unit()["Service"][key].strip() == want


def test_systemd_unit_reads_the_binlog_dir_read_only() -> None:
    paths = [p.lstrip("-") for p in unit()["Service"]["ReadOnlyPaths"].split()]
    assert "/var/lib/mysql" in paths
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_unit_does_not_restart_on_a_config_error() -> None:
    assert unit()["Service"]["RestartPreventExitStatus"].split() == [
        str(errors.ConfigError.exit_code)
    ]
