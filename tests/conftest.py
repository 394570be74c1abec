"""Test-wide fixtures: real services started once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.services.mariadb",
    "tests.services.cloud",
    "tests.services.gauth",
    "tests.services.pagerduty",
]

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES
