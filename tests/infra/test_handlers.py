"""Every Lambda handler and Cloud Function entry point named in Terraform
exists in functions/ with the right signature."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.infra.handlers import EntryPoint, entry_point_problems, entry_points
from tests.infra.tftree import ROOT, modules

ENTRY_POINTS = entry_points([m for m in modules() if not m.is_root])


def test_terraform_names_the_three_agreed_entry_points() -> None:
    assert {(e.kind, e.value) for e in ENTRY_POINTS} == {
        ("lambda", "functions/aws/verify_replicate.handler"),
        ("lambda", "functions/aws/restore_planner.handler"),
        ("cloudfunction", "verify_replicate"),
    }


@pytest.mark.parametrize("ep", ENTRY_POINTS, ids=lambda e: e.value)
def test_entry_point_exists_in_functions_with_its_signature(ep: EntryPoint) -> None:
    if not (ROOT / "functions").is_dir():
        pytest.skip("functions/ is built by the serverless issue")
    if ep.kind == "cloudfunction" and not (ROOT / "functions/gcp").is_dir():
        pytest.skip("functions/gcp/ is built by the serverless issue's GCP part")
    assert entry_point_problems(ROOT, ep) == []


# The checker itself, on throwaway trees: it must tell a wrong tree from a right one.

LAMBDA = EntryPoint("lambda", "functions/aws/verify_replicate.handler", "m:aws_lambda_function.v")
GCF = EntryPoint("cloudfunction", "verify_replicate", "m:google_cloudfunctions2_function.v")


def _tree(tmp_path: Path, aws: str | None, gcp: str | None) -> Path:
    if aws is not None:
        (tmp_path / "functions/aws").mkdir(parents=True)
        (tmp_path / "functions/aws/verify_replicate.py").write_text(aws)
    if gcp is not None:
        (tmp_path / "functions/gcp").mkdir(parents=True)
        (tmp_path / "functions/gcp/main.py").write_text(gcp)
    return tmp_path


def test_checker_accepts_the_right_signatures(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        "from x import y\n\n@y.inject\ndef handler(event, context, extra=None):\n    return {}\n",
        "import functions_framework\n\n@functions_framework.cloud_event\n"
        "def verify_replicate(cloud_event):\n    pass\n",
    )
    assert entry_point_problems(root, LAMBDA) == []
    assert entry_point_problems(root, GCF) == []


@pytest.mark.parametrize(
    ("aws", "problem"),
    [
        (None, "does not exist"),
        ("def other(event, context):\n    pass\n", "no top-level function handler()"),
        ("def handler(event):\n    pass\n", "must take exactly (event, context)"),
        ("async def handler(event, context):\n    pass\n", "cannot call async"),
        ("class C:\n    def handler(self, event, context):\n        pass\n", "no top-level"),
    ],
)
def test_checker_rejects_a_wrong_lambda_handler(
    tmp_path: Path, aws: str | None, problem: str
) -> None:
    problems = entry_point_problems(_tree(tmp_path, aws, None), LAMBDA)
    assert len(problems) == 1 and problem in problems[0], problems


@pytest.mark.parametrize(
    ("gcp", "problem"),
    [
        (None, "does not exist"),
        ("def verify_replicate(cloud_event):\n    pass\n", "@functions_framework.cloud_event"),
        (
            "import functions_framework\n\n@functions_framework.cloud_event\n"
            "def verify_replicate(request, context):\n    pass\n",
            "must take exactly (cloud_event)",
        ),
    ],
)
def test_checker_rejects_a_wrong_cloud_function(
    tmp_path: Path, gcp: str | None, problem: str
) -> None:
    problems = entry_point_problems(_tree(tmp_path, None, gcp), GCF)
    assert len(problems) == 1 and problem in problems[0], problems
