"""The DynamoDB catalog on moto: every write conditional and idempotent, states never move
backwards, reads are Query calls (never Scan), and the [catalog] config section."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from shipper import objects
from shipper.catalog.dynamodb import DynamoCatalog, Outcome
from shipper.catalog.dynamodb_items import BinlogEntry, CopyState, item_for_key
from shipper.errors import ConfigError, IntegrityError
from tests.functions.aws.conftest import create_catalog_table
from tests.helpers import parse
from tests.services.cloud import Moto, unique

DAY = 86_400
T0 = 1_764_547_200  # 2025-12-01T00:00:00Z


@pytest.fixture
def cat(moto: Moto) -> tuple[DynamoCatalog, Counter[str]]:
    """A catalog on a fresh table, and the DynamoDB operations its client sends."""
    table = unique("catalog")
    client = moto.client("dynamodb")
    create_catalog_table(client, table)
    ops: Counter[str] = Counter()

    def count(model: Any, **_kw: Any) -> None:
        ops[model.name] += 1

    client.meta.events.register("before-call.dynamodb", count)
    return DynamoCatalog(table, client=client), ops


def entry(seq: int, *, sha: str = "a" * 64, start: int = T0, tenant: str = "t") -> BinlogEntry:
    key = objects.binlog_key(tenant, 3, start, f"mysql-bin.{seq:06d}")
    return BinlogEntry(
        object_key=key,
        binlog_name=f"mysql-bin.{seq:06d}",
        plaintext_sha256=sha,
        plaintext_size=100 + seq,
        first_ts=start,
        last_ts=start + DAY - 1,
        gtid_set=f"0-3-{seq}",
        host_state="committed",
    )


def copy(state: str, cloud: str = "aws", key: str = "k") -> CopyState:
    return CopyState(cloud=cloud, bucket="b", key=key, state=state, at=T0 + 5.5, by="test")


def test_describing_a_binlog_is_idempotent_and_refuses_another_file(
    cat: tuple[DynamoCatalog, Counter[str]],
) -> None:
    c, _ = cat
    e = entry(1)
    assert c.put_binlog(e) == Outcome.WRITTEN
    before = c.item(e.object_key).attrs
    assert c.put_binlog(e) == Outcome.UNCHANGED  # a redelivery
    other = BinlogEntry(**{**e.__dict__, "plaintext_sha256": "b" * 64, "plaintext_size": 1})
    assert c.put_binlog(other) == Outcome.CONFLICT
    assert c.item(e.object_key).attrs == before


def test_a_copy_state_never_moves_backwards(cat: tuple[DynamoCatalog, Counter[str]]) -> None:
    c, _ = cat
    key = entry(1).object_key
    assert c.record_copy(key, copy("unverified"))[0] == Outcome.WRITTEN
    assert c.record_copy(key, copy("verified"))[0] == Outcome.WRITTEN
    outcome, old = c.record_copy(key, copy("unverified"))
    assert outcome == Outcome.UNCHANGED and old is not None and old.state == "verified"
    assert c.record_copy(key, copy("verified"))[0] == Outcome.UNCHANGED  # a redelivery
    assert c.record_copy(key, copy("integrity_failed"))[0] == Outcome.WRITTEN
    outcome, old = c.record_copy(key, copy("verified"))  # terminal for this copy
    assert outcome == Outcome.UNCHANGED and old is not None and old.state == "integrity_failed"
    # the other cloud's copy is its own
    assert c.record_copy(key, copy("verified", "gcp"))[0] == Outcome.WRITTEN
    item = c.item(key)
    assert {k: v.state for k, v in item.copies.items()} == {
        "aws": "integrity_failed",
        "gcp": "verified",
    }
    assert item.copies["aws"].at == T0 + 5.5


def test_reads_are_queries_and_ranges_use_the_local_index(
    cat: tuple[DynamoCatalog, Counter[str]],
) -> None:
    c, ops = cat
    for seq in range(1, 31):
        assert c.put_binlog(entry(seq, start=T0 + seq * DAY)) == Outcome.WRITTEN
    c.put_binlog(entry(1, tenant="other"))
    ops.clear()
    every = c.binlogs("t", 3)
    assert [b.sequence for b in every] == list(range(1, 31))
    assert all(b.state == "committed" and b.index_key for b in every)
    window = c.binlogs("t", 3, since=T0 + 10 * DAY + 5, until=T0 + 12 * DAY + 5)
    assert [b.sequence for b in window] == [10, 11, 12]
    assert c.servers("t") == [3] and c.servers("other") == [3] and c.servers("none") == []
    assert set(ops) == {"Query"}


def test_keys_outside_the_layout_are_refused() -> None:
    with pytest.raises(IntegrityError):
        item_for_key("acme/not/the/layout.bin")
    a = item_for_key("acme/mysql/3/2026/11/mysql-bin.000007.zst.enc")
    b = item_for_key("acme/mysql/3/2026/12/mysql-bin.000007.zst.enc")
    lin = item_for_key(f"acme/mysql/3/2026/11/mysql-bin.000007.lineage-{'c' * 12}.zst.enc")
    idx = item_for_key("acme/mysql/3/2026/11/mysql-bin.000007.idx.zst.enc")
    assert len({a.sk, b.sk, lin.sk}) == 3  # same name, other month or lineage: other items
    assert (idx.pk, idx.sk, idx.slot) == (a.pk, a.sk, "index_copy")
    assert a.pk == "T#acme#S#3" and a.sk == "B#0#0000000007#202611"


def test_catalog_url_and_config_section() -> None:
    with pytest.raises(ConfigError, match="dynamodb://TABLE"):
        DynamoCatalog.from_url("s3://nope")
    with pytest.raises(ConfigError, match="unknown option"):
        DynamoCatalog.from_url("dynamodb://t", {"colour": "blue"})
    base = (
        'state_dir = "/tmp/x"\n[[targets]]\nurl = "file:///tmp/a"\n'
        '[[keys]]\nprovider = "local"\npath = "/tmp/k"\n'
    )
    cfg = parse(base + '[catalog]\nurl = "dynamodb://fleet"\nregion = "eu-west-1"\n')
    assert cfg.catalog is not None and cfg.catalog.options == {"region": "eu-west-1"}
    assert parse(base).catalog is None
    with pytest.raises(ConfigError, match=r"catalog\.url"):
        parse(base + '[catalog]\nurl = "fleet"\n')
    with pytest.raises(ConfigError, match=r"unknown key catalog\.table"):
        parse(base + '[catalog]\nurl = "dynamodb://fleet"\ntable = "x"\n')


def test_a_failed_copy_is_not_restorable_from_its_cloud(
    cat: tuple[DynamoCatalog, Counter[str]],
) -> None:
    """The host said committed; the function found the S3 copy tampered, the GCS one good:
    a reader fetching from S3 must not plan with it, one fetching from GCS may."""
    c, _ = cat
    e = entry(1)
    c.put_binlog(e)
    c.record_copy(e.object_key, copy("integrity_failed", "aws", e.object_key))
    c.record_copy(e.object_key, copy("verified", "gcp", e.object_key))
    (from_s3,) = c.binlogs("t", 3)
    gcs = DynamoCatalog(c.table, client=c.client, cloud="gcp")
    (from_gcs,) = gcs.binlogs("t", 3)
    assert (from_s3.state, from_gcs.state) == ("integrity_failed", "committed")
    assert gcs.confirms(e.object_key) and not c.confirms(e.object_key)


def test_a_missing_table_is_named_not_a_traceback(moto: Moto) -> None:
    from shipper.errors import StorageError

    c = DynamoCatalog("no-such-table", client=moto.client("dynamodb"))
    with pytest.raises(StorageError, match="table no-such-table does not exist") as e:
        c.binlogs("t", 3)
    assert not e.value.transient and e.value.__cause__ is not None
