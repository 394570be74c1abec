"""Object keys and the encryption context each key implies."""

from __future__ import annotations

import pytest

from shipper import objects


def test_binlog_key_uses_first_event_month_in_utc() -> None:
    # 2026-11-30T23:30:00-02:00 is 2026-12-01T01:30Z: December, not November
    ts = 1796088600
    assert objects.binlog_key("acme", 7, ts, "mysql-bin.000042") == (
        "acme/mysql/7/2026/12/mysql-bin.000042.zst.enc"
    )


@pytest.mark.parametrize(
    ("key", "context"),
    [
        (
            "acme/mysql/7/2026/11/mysql-bin.000042.zst.enc",
            {"tenant": "acme", "server_id": "7", "binlog_name": "mysql-bin.000042"},
        ),
        (
            "acme/mysql/7/2026/11/mysql-bin.000042.lineage-0123456789ab.zst.enc",
            {"tenant": "acme", "server_id": "7", "binlog_name": "mysql-bin.000042"},
        ),
        (
            "acme/mysql/7/2026/11/mysql-bin.000042.idx.zst.enc",
            {
                "tenant": "acme",
                "server_id": "7",
                "binlog_name": "mysql-bin.000042",
                "kind": "txindex",
            },
        ),
        (
            "acme/mysql/7/2026/11/mysql-bin.000042.lineage-0123456789ab.idx.zst.enc",
            {
                "tenant": "acme",
                "server_id": "7",
                "binlog_name": "mysql-bin.000042",
                "kind": "txindex",
            },
        ),
        (
            "acme/mysql/7/quarantine/mysql-bin.000042.0123456789ab.zst.enc",
            {"tenant": "acme", "server_id": "7", "binlog_name": "mysql-bin.000042"},
        ),
        (
            "acme/mysql/7/backups/20261124T021249Z-mariabackup-b22580.xbstream.zst.enc",
            {
                "tenant": "acme",
                "server_id": "7",
                "backup_id": "20261124T021249Z-mariabackup-b22580",
            },
        ),
        ("somewhere/else.bin", None),
    ],
)
def test_context_for_key(key: str, context: dict[str, str] | None) -> None:
    assert objects.context_for_key(key) == context


def test_keys_round_trip_through_context() -> None:
    key = objects.binlog_key("t-1", 3, 1_700_000_000, "bin.000009")
    ctx = objects.context_for_key(key)
    assert ctx == {"tenant": "t-1", "server_id": "3", "binlog_name": "bin.000009"}
    lk = objects.lineage_key(key, "ab" * 32)
    assert objects.context_for_key(lk) == ctx
    assert objects.context_for_key(objects.index_key(lk)) == {**ctx, "kind": "txindex"}
    q = objects.quarantine_key("t-1", 3, "bin.000009", "cd" * 32)
    assert objects.context_for_key(q) == ctx
