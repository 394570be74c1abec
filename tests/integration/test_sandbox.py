"""The throwaway server's failure path: a mariadbd that cannot start says why."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipper.errors import DatabaseError
from shipper.sandbox import SandboxServer

pytestmark = pytest.mark.mariadb


def test_server_that_cannot_start_reports_its_log(tmp_path: Path) -> None:
    server = SandboxServer(base_dir=tmp_path, extra_args=["--no-such-option-here"])
    with pytest.raises(DatabaseError) as e:
        server.start(timeout=60)
    assert "exited at start" in str(e.value)
    assert "no-such-option-here" in str(e.value)  # the tail of mariadbd's own error log
    server.stop()  # a no-op after a failed start
