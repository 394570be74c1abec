"""The DynamoDB catalog's fast binlog read on moto: key ranges queried at once give exactly
the single Query's items, in its order, at every range edge and across lineages; a bounded
number of requests; items without ``plan_inputs`` (an earlier release's) read in full; the
raw Query body read as botocore would."""

from __future__ import annotations

import functools
import math
from collections import Counter
from typing import Any

import pytest

from shipper import objects
from shipper.catalog import dynamodb_sdk as sdk
from shipper.catalog.dynamodb import DynamoCatalog
from shipper.catalog.dynamodb_items import (
    PLAN_INPUTS,
    BinlogEntry,
    CopyState,
    Item,
    item_for_key,
    partition,
    sort_binlogs,
)
from shipper.catalog.dynamodb_reads import PROJECTION, read_all
from tests.functions.aws.conftest import create_catalog_table
from tests.services.cloud import Moto, unique

DAY = 86_400
T0 = 1_764_547_200  # 2025-12-01T00:00:00Z
MONTH = 31 * DAY
SID = 3


def entry(seq: int, *, month: int = 0, sha: str = "a" * 64, lineage: bool = False) -> BinlogEntry:
    start = T0 + month * MONTH + seq * 60
    key = objects.binlog_key("t", SID, start, f"mysql-bin.{seq:06d}")
    if lineage:
        key = objects.lineage_key(key, sha)
    return BinlogEntry(
        object_key=key,
        binlog_name=f"mysql-bin.{seq:06d}",
        plaintext_sha256=sha,
        plaintext_size=100 + seq,
        first_ts=start,
        last_ts=start + 59,
        gtid_previous=f"0-{SID}-{seq - 1}",
        gtid_set=f"0-{SID}-{seq}",
    )


def copy(state: str, cloud: str, key: str) -> CopyState:
    return CopyState(cloud=cloud, bucket="b", key=key, state=state, at=T0, by="test")


def verified(c: DynamoCatalog, e: BinlogEntry, clouds: tuple[str, ...] = ("aws", "gcp")) -> None:
    c.put_binlog(e)
    for cloud in clouds:
        c.record_copy(e.object_key, copy("verified", cloud, e.object_key))
        idx = objects.index_key(e.object_key)
        c.record_copy(idx, copy("verified", cloud, idx))


@pytest.fixture(scope="module")
def table(moto: Moto) -> str:
    """One server's binlogs in every shape a range edge can meet: sequences 1..40 of the
    plain lineage, most of them in two months (two items of one name), a few missing;
    lineage copies before, among and after them; a quarantined copy; an item with only an
    index copy; and a neighbouring server's partition."""
    name = unique("reads")
    client = moto.client("dynamodb")
    create_catalog_table(client, name)
    c = DynamoCatalog(name, client=client)
    for seq in range(1, 41):
        if seq in (9, 24, 25):
            continue  # gaps, some of them where a range is likely to start
        if seq == 35:  # the binlog verified, its index not yet
            c.put_binlog(entry(seq))
            c.record_copy(entry(seq).object_key, copy("verified", "aws", entry(seq).object_key))
            continue
        if seq == 36:  # the host's word, its copies not verified yet
            e = entry(seq)
            c.put_binlog(BinlogEntry(**{**e.__dict__, "host_state": "committed"}))
            c.record_copy(e.object_key, copy("unverified", "aws", e.object_key))
            continue
        verified(c, entry(seq))
        if seq % 3:
            verified(c, entry(seq, month=1, sha="b" * 64))  # RESET MASTER: the name again
    for seq in (1, 17, 41):
        verified(c, entry(seq, sha="c" * 64, lineage=True))
    bad = entry(33).object_key  # tampered in S3, good in GCS
    c.record_copy(bad, copy("integrity_failed", "aws", bad))
    q = objects.quarantine_key("t", SID, "mysql-bin.000030", "d" * 64)
    c.put_binlog(BinlogEntry(q, "mysql-bin.000030", "d" * 64, 5, T0, T0 + 1))
    only = entry(50)  # its index's event came first: a copy, no description yet
    idx = objects.index_key(only.object_key)
    c.record_copy(idx, copy("verified", "aws", idx))
    other = objects.binlog_key("t", SID + 1, T0, "mysql-bin.000001")
    c.put_binlog(BinlogEntry(other, "mysql-bin.000001", "e" * 64, 1, T0, T0 + 1))
    return name


def one_query(client: Any, table: str, *, whole: bool = False) -> list[dict[str, Any]]:
    """Every binlog item of the partition by one Query, page after page (the reference);
    ``whole``: every attribute, else what a plan reads."""
    out: list[dict[str, Any]] = []
    kw: dict[str, Any] = dict(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :b)",
        ExpressionAttributeValues={":pk": {"S": partition("t", SID)}, ":b": {"S": "B#"}},
        **({} if whole else PROJECTION),
    )
    while True:
        r = client.query(**kw)
        out += r["Items"]
        if "LastEvaluatedKey" not in r:
            return out
        kw["ExclusiveStartKey"] = r["LastEvaluatedKey"]


@pytest.mark.parametrize(("workers", "page"), [(2, 1), (3, 2), (4, 3), (8, 2), (8, 5), (16, 4)])
def test_ranges_at_once_return_exactly_the_single_query(
    moto: Moto, table: str, workers: int, page: int
) -> None:
    client = moto.client("dynamodb")
    want = one_query(client, table)
    assert len({r["sk"]["S"] for r in want}) == len(want) > 60
    cat = DynamoCatalog(table, client=client, workers=workers, page_limit=page)
    ranges: set[tuple[str, str]] = set()

    def page_fn(*a: Any) -> Any:
        ranges.add((a[0], a[1]))
        return cat._page(partition("t", SID), *a)

    got = read_all(page_fn, workers)
    assert [r["sk"]["S"] for r in got] == [r["sk"]["S"] for r in want]
    assert got == want
    # it did split: the whole key space, the plain lineage, at least one cut inside it
    # and every other lineage
    assert len(ranges) >= 4


def test_a_plan_read_is_the_whole_item_read(moto: Moto, table: str) -> None:
    """binlogs() from plan_inputs and copy states, split and paged, gives the binlogs (and
    the confirmed keys) that reading every item whole gives, for a reader in any cloud."""
    client = moto.client("dynamodb")
    for cloud in ("aws", "gcp", "local"):
        fast = DynamoCatalog(table, client=client, cloud=cloud, workers=4, page_limit=3)
        got = fast.binlogs("t", SID)
        items = [Item.from_attrs(fast._load(r)) for r in one_query(client, table, whole=True)]
        described = [i for i in items if "plaintext_sha256" in i.attrs]
        assert got == sort_binlogs([i.to_binlog(cloud) for i in described], None, None)
        for i in described:
            c, ic = i.copies.get(cloud), i.index_copies.get(cloud)
            key, index = i.attrs["object_key"], i.attrs["index_key"]
            assert fast.confirms(key) == (c is not None and c.state == "verified"), key
            assert fast.confirms(index) == (ic is not None and ic.state == "verified"), index
        assert {b.state for b in got} == {"committed", "flagged", "uploaded"} | (
            {"integrity_failed"} if cloud == "aws" else set()
        )


def test_requests_stay_bounded(moto: Moto, table: str) -> None:
    client = moto.client("dynamodb")
    ops: Counter[str] = Counter()
    client.meta.events.register("before-call.dynamodb", lambda model, **_: ops.update([model.name]))
    items = len(one_query(client, table))
    ops.clear()
    for workers, page in ((1, 4), (4, 4), (8, 3), (16, 1)):
        cat = DynamoCatalog(table, client=client, workers=workers, page_limit=page)
        cat.binlogs("t", SID)
        pages = math.ceil(items / page)
        if workers == 1:
            assert cat.requests <= pages + 1 + 1  # an empty last page; the item read whole
        else:
            # each range may end on a full page (one empty page more); the highest
            # sequence; every other lineage; the item read whole
            assert cat.requests <= pages + 2 * workers + 1 + 2 + 1
    assert set(ops) == {"Query"}  # never a Scan


def test_a_small_server_is_one_query(moto: Moto) -> None:
    name = unique("small")
    client = moto.client("dynamodb")
    create_catalog_table(client, name)
    c = DynamoCatalog(name, client=client)
    for seq in range(1, 6):
        verified(c, entry(seq))
    before = c.requests
    assert [b.sequence for b in c.binlogs("t", SID)] == [1, 2, 3, 4, 5]
    assert c.requests - before == 1


def test_items_an_earlier_release_wrote_are_read_whole(moto: Moto) -> None:
    """Items described without ``plan_inputs`` (as before it existed) are read again with
    their attributes, in one Query, and plan exactly as the others."""
    name = unique("legacy")
    client = moto.client("dynamodb")
    create_catalog_table(client, name)
    c = DynamoCatalog(name, client=client)
    for seq in range(1, 9):
        verified(c, entry(seq))
    old = [entry(s).object_key for s in (3, 4, 6)]
    for key in old:
        ref = item_for_key(key)
        client.update_item(
            TableName=name,
            Key={"pk": {"S": ref.pk}, "sk": {"S": ref.sk}},
            UpdateExpression="REMOVE #p",
            ExpressionAttributeNames={"#p": PLAN_INPUTS},
        )
    # an unknown format (a later release's) is read whole too
    ref = item_for_key(entry(7).object_key)
    client.update_item(
        TableName=name,
        Key={"pk": {"S": ref.pk}, "sk": {"S": ref.sk}},
        UpdateExpression="SET #p = :p",
        ExpressionAttributeNames={"#p": PLAN_INPUTS},
        ExpressionAttributeValues={":p": {"S": "[99]"}},
    )
    before = c.requests
    got = c.binlogs("t", SID)
    assert c.requests - before == 2  # the binlogs, then items 3..7 whole
    assert [b.sequence for b in got] == list(range(1, 9))
    want = [Item.from_attrs(_whole(c, s)).to_binlog("aws") for s in range(1, 9)]
    assert got == want
    assert all(c.confirms(e.object_key) for e in map(entry, (3, 4, 6, 7)))


def _whole(c: DynamoCatalog, seq: int) -> dict[str, Any]:
    item = c.item(entry(seq).object_key)
    assert item is not None
    return item.attrs


def test_query_raw_reads_what_botocore_reads(moto: Moto, table: str) -> None:
    client = moto.client("dynamodb")
    kw: dict[str, Any] = dict(
        TableName=table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :b)",
        ExpressionAttributeValues={":pk": {"S": partition("t", SID)}, ":b": {"S": "B#"}},
        Limit=7,
    )
    raw = sdk.query_raw(client, **kw)
    # what botocore's parser is handed after query_raw's hook (registered first)
    bodies: list[bytes] = []
    client.meta.events.register(
        "before-parse.dynamodb.Query",
        lambda response_dict, **_: bodies.append(response_dict["body"]),
    )
    again = sdk.query_raw(client, **kw)
    assert bodies == [b"{}"]  # botocore's parser did not walk the items
    assert (again["Items"], again["LastEvaluatedKey"]) == (raw["Items"], raw["LastEvaluatedKey"])
    parsed = client.query(**kw)  # the same client, after the hook: parsed by botocore
    assert len(bodies[1]) > 1000
    assert raw["Items"] == parsed["Items"] and len(raw["Items"]) == 7
    assert raw["LastEvaluatedKey"] == parsed["LastEvaluatedKey"]
    # another operation on the same client is parsed as always
    assert client.describe_table(TableName=table)["Table"]["TableName"] == table


def test_read_all_without_workers_pages_one_query(moto: Moto, table: str) -> None:
    client = moto.client("dynamodb")
    cat = DynamoCatalog(table, client=client, workers=1, page_limit=4)
    got = read_all(functools.partial(cat._page, partition("t", SID)), 1)
    assert got == one_query(client, table)
