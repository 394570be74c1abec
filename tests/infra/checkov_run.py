"""Run checkov from its own virtual environment (.venv-checkov, made by
`make infra-check`): it pins its own boto3 and its own hcl2 fork, so it never
shares the project's venv."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tests.infra.tftree import ROOT

CHECKOV = ROOT / ".venv-checkov" / "bin" / "checkov"
CHECKS_DIR = ROOT / "infra" / "terraform" / "checks"


def run_checkov(directory: Path, *args: str) -> list[dict[str, Any]]:
    """checkov's JSON reports (one per framework) for ``directory``."""
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE"}
    proc = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(directory),
            "--framework",
            "terraform",
            "--external-checks-dir",
            str(CHECKS_DIR),
            "--skip-download",
            "-o",
            "json",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    # exit 1 means "some check failed", which the callers look at themselves
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"checkov exited {proc.returncode}: {proc.stderr[-2000:]}")
    doc = json.loads(proc.stdout)
    return doc if isinstance(doc, list) else [doc]


def results(reports: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(check id, resource address) -> PASSED / FAILED / SKIPPED."""
    out: dict[tuple[str, str], str] = {}
    for r in reports:
        for kind, verdict in (
            ("passed_checks", "PASSED"),
            ("failed_checks", "FAILED"),
            ("skipped_checks", "SKIPPED"),
        ):
            for c in r.get("results", {}).get(kind, []):
                out[(c["check_id"], c["resource"])] = verdict
    return out
