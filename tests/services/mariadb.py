"""Session-scoped MariaDB server with binlogs on (real mariadbd, temp datadir)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shipper.sandbox import SandboxServer


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxServer]:
    """One MariaDB per test session: ROW binlogs, server id 1, 1 MiB max binlog size.

    Tests that need a private binlog sequence should use ``mariadb_factory``.
    """
    server = SandboxServer(base_dir=tmp_path_factory.mktemp("mariadb"), server_id=1)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Start extra servers: ``mariadb_factory(server_id=7, max_binlog_size=...)``.

    Every server started this way is stopped at the end of the session.
    """
    started: list[SandboxServer] = []

    def make(**kw: object) -> SandboxServer:
        base: Path = tmp_path_factory.mktemp("mariadb-extra")
        server = SandboxServer(base_dir=base, **kw)  # type: ignore[arg-type]
        started.append(server.start())
        return server

    yield make
    for s in started:
        s.stop()
