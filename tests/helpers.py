"""Helpers shared by tests: configs for a sandbox server, running the CLI in-process."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from shipper import config as config_mod
from shipper.config import Config, MySQLConfig
from shipper.keys.local import LocalKeyring
from shipper.sandbox import SandboxServer


def write_config(
    state_dir: Path,
    server: SandboxServer,
    *,
    tenant: str = "t1",
    archive: str | None = None,
    extra: str = "",
) -> Path:
    """Write STATE_DIR/config.toml + keyring for ``server``; returns the config path."""
    state_dir.mkdir(parents=True, exist_ok=True)
    keyring = state_dir / "keyring"
    if not keyring.exists():
        LocalKeyring.create(keyring)
    text = config_mod.render_default(
        state_dir,
        tenant=tenant,
        mysql=MySQLConfig(socket=str(server.socket_path)),
        archive_url=archive or f"file://{state_dir / 'archive'}",
        keyring=keyring,
    )
    path = state_dir / "config.toml"
    path.write_text(extra + "\n" + text if extra else text)
    return path


def load(path: Path) -> Config:
    return config_mod.load(path)


def parse(text: str, path: Path | None = None) -> Config:
    return config_mod.parse(tomllib.loads(text), path or Path("config.toml"))


def rotate(server: SandboxServer, n: int, rows: int = 300, table: str = "app.t") -> None:
    """Write ``rows`` rows then FLUSH BINARY LOGS, ``n`` times: ``n`` more closed binlogs."""
    for _ in range(n):
        server.write_rows(table, rows=rows)
        server.flush_binary_logs()


def fill_binlogs(server: SandboxServer, n: int, mb: float = 4.0) -> None:
    """``n`` more closed binlogs of about ``mb`` MB each, written server-side (fast)."""
    server.execute(
        "CREATE DATABASE IF NOT EXISTS app",
        "CREATE TABLE IF NOT EXISTS app.big (id BIGINT AUTO_INCREMENT PRIMARY KEY, v TEXT)",
    )
    rows = int(mb * 1_000_000 / 300)
    for _ in range(n):
        server.execute(
            "INSERT INTO app.big (v) SELECT CONCAT_WS(' ', MD5(RAND()), MD5(RAND()), "
            "MD5(RAND()), 'row', seq, MD5(RAND()), MD5(RAND()), MD5(RAND())) "
            f"FROM app.seq_1_to_{rows}",
            "FLUSH BINARY LOGS",
        )


def closed_binlogs(server: SandboxServer) -> list[str]:
    names = [n for n, _ in server.binary_logs()]
    return names[:-1]


__all__ = ["Any", "closed_binlogs", "fill_binlogs", "load", "parse", "rotate", "write_config"]
