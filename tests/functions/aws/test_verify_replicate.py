"""verify_replicate end to end on emulators: an object lands in moto S3, moto's bucket
notification puts the event on SQS, the poller hands the batch to the handler, and the
object is verified, copied to fake-gcs-server and recorded in DynamoDB (moto)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.functions.aws.conftest import FIXTURES, Fleet, IamMoto, archive_binlog, emf, totals
from tests.services.cloud import FakeGcs, Moto


def test_object_is_verified_replicated_and_recorded(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    key = fleet.archive("mdbpoc__domain_id_0_mariadb-repl-bin.000002", name="mysql-bin.000002")
    capsys.readouterr()
    assert fleet.poller.poll() >= 2  # the binlog and its index (moto's TestEvent too)
    assert all(not r["batchItemFailures"] for r in fleet.poller.responses)

    for k in (key, key.replace(".zst.enc", ".idx.zst.enc")):
        assert fleet.replica.open(k).read() == fleet.source.open(k).read()
    item = fleet.item(key)
    assert item.copies["aws"].state == "verified"
    assert item.copies["gcp"].state == "verified"
    assert item.index_copies["aws"].state == "verified"
    assert item.index_copies["gcp"].state == "verified"
    assert item.copies["gcp"].version == fleet.replica.stat(key).version
    assert item.copies["aws"].version == fleet.source.stat(key).version
    assert item.state == "committed"
    # the shipper's trace continues in the catalog (the fixture ships with trace id "t")
    assert item.attrs["trace_id"] == fleet.source.stat(key).metadata["trace_id"] == "t"
    (b,) = fleet.catalog.binlogs("acme", 7)
    assert b.name == "mysql-bin.000002" and b.index_key and b.first_ts

    blobs = emf(capsys.readouterr().out)
    assert {tuple(d) for b in blobs for d in b["_aws"]["CloudWatchMetrics"][0]["Dimensions"]} == {
        ("tenant", "server")
    }
    assert all(b["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "BinlogShipper" for b in blobs)
    t = totals([b for b in blobs if b["tenant"] == "acme"])
    assert t["verified"] == 2 and t["replicated"] == 2
    assert t["integrity_failed"] == 0 and t["lineage_conflicts"] == 0
    assert (
        t["bytes"]
        == fleet.source.stat(key).size
        + fleet.source.stat(key.replace(".zst.enc", ".idx.zst.enc")).size
    )


def _sealed(fleet: Fleet, key: str, plaintext: bytes, meta: dict[str, str]) -> None:
    import io

    from shipper import envelope, objects

    out = io.BytesIO()
    envelope.seal(
        io.BytesIO(plaintext),
        out,
        providers=[fleet.provider],
        context=objects.context_for_key(key),
        metadata=meta,
    )
    fleet.source.put(key, io.BytesIO(out.getvalue()), size=out.tell(), metadata=meta)


def test_redelivered_event_changes_nothing(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    key = fleet.archive("kingbus__mysql_bin.000011", name="mysql-bin.000011")
    fleet.poller.poll()
    before = fleet.item(key).attrs
    generation = fleet.replica.stat(key).version
    bodies = [b for b in fleet.poller.bodies if "ObjectCreated" in b]
    capsys.readouterr()

    sqs = fleet.moto.client("sqs")
    for body in bodies:
        sqs.send_message(QueueUrl=fleet.poller.queue_url, MessageBody=body)
    assert fleet.poller.poll() == len(bodies)
    assert not fleet.poller.responses[-1]["batchItemFailures"]
    assert fleet.item(key).attrs == before
    assert fleet.replica.stat(key).version == generation
    t = totals(emf(capsys.readouterr().out))
    assert t["replicated"] == 0 and t["verified"] == 0 and t["integrity_failed"] == 0


def test_tampered_object_is_recorded_and_never_replicated(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    from shipper.errors import ObjectNotFound

    key = fleet.archive("kingbus__mysql_bin.000011", name="mysql-bin.000011")
    good = fleet.source.open(key).read()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01
    # someone replaces the object (a new version of the key) before the function runs
    meta = dict(fleet.source.stat(key).metadata)
    fleet.moto.s3.put_object(Bucket=fleet.bucket, Key=key, Body=bytes(bad), Metadata=meta)
    capsys.readouterr()
    fleet.poller.poll()

    item = fleet.item(key)
    assert item.copies["aws"].state == "integrity_failed"
    assert "failed authentication" in item.copies["aws"].detail
    assert "gcp" not in item.copies
    with pytest.raises(ObjectNotFound):
        fleet.replica.stat(key)
    out = capsys.readouterr().out
    assert totals(emf(out))["integrity_failed"] >= 1
    assert "INTEGRITY FAILED" in caplog.text
    assert fleet.dlq_depth() == 0  # recorded and alerted, not retried


def test_binlog_event_crc_mismatch_fails_verification(
    fleet: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    """The envelope is sound, but one event's CRC32 is not: only the parser sees it."""
    import hashlib

    from shipper import objects
    from shipper.binlog import scan_file
    from tests.functions.aws.conftest import FIXTURES

    path = FIXTURES / "kingbus__mysql_bin.000011"
    info = scan_file(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside some event's body: its CRC32 no longer matches
    assert info.first_timestamp is not None
    key = objects.binlog_key("acme", 7, info.first_timestamp, "mysql-bin.000011")
    sha = hashlib.sha256(data).hexdigest()
    _sealed(fleet, key, bytes(data), {"plaintext_sha256": sha, "binlog_sequence": "11"})
    capsys.readouterr()
    fleet.poller.poll()

    copy = fleet.item(key).copies["aws"]
    assert copy.state == "integrity_failed"
    assert "CRC32 mismatch" in copy.detail
    assert totals(emf(capsys.readouterr().out))["integrity_failed"] == 1
    assert list(fleet.replica.list("acme/")) == []


def test_object_deleted_before_its_event(fleet: Fleet, caplog: pytest.LogCaptureFixture) -> None:
    key = fleet.archive("kingbus__mysql_bin.000011", name="mysql-bin.000011")
    fleet.moto.s3.delete_object(Bucket=fleet.bucket, Key=key)  # a delete marker
    fleet.poller.poll()

    item = fleet.item(key)
    assert item is not None and not item.copies  # only the index was recorded
    assert item.index_copies["gcp"].state == "verified"
    assert [i.key for i in fleet.replica.list("acme/")] == [key.replace(".zst.enc", ".idx.zst.enc")]
    assert all(not r["batchItemFailures"] for r in fleet.poller.responses)
    assert fleet.dlq_depth() == 0
    assert "is gone before it was verified" in caplog.text


def test_different_object_at_the_replica_key_is_a_lineage_conflict(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    import io

    key = fleet.archive("kingbus__mysql_bin.000011", name="mysql-bin.000011")
    theirs = b"another file that claimed this key first"
    fleet.replica.put(key, io.BytesIO(theirs), size=len(theirs), metadata={})
    generation = fleet.replica.stat(key).version
    capsys.readouterr()
    fleet.poller.poll()

    item = fleet.item(key)
    assert item.copies["aws"].state == "verified"
    assert item.copies["gcp"].state == "lineage_conflict"
    assert "not overwritten" in item.copies["gcp"].detail
    assert fleet.replica.open(key).read() == theirs
    assert fleet.replica.stat(key).version == generation
    assert totals(emf(capsys.readouterr().out))["lineage_conflicts"] == 1
    assert "LINEAGE CONFLICT" in caplog.text


def test_another_envelope_of_the_same_binlog_at_the_replica_key_is_equivalent(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """GCS already holds the same binlog (and index) sealed again (new data key, nonces):
    the host wrote it there while its S3 circuit was open and failed over. The Lambda
    verifies it in full and records it as the GCS copy: no conflict, nothing copied."""
    from shipper.fleet.verify import verify

    key = fleet.archive("kingbus__mysql_bin.000011", name="mysql-bin.000011")
    ikey = key.replace(".zst.enc", ".idx.zst.enc")
    reseal = fleet.tmp / "reseal"
    reseal.mkdir()
    assert (
        archive_binlog(
            fleet.replica,
            [fleet.provider],
            FIXTURES / "kingbus__mysql_bin.000011",
            reseal,
            "mysql-bin.000011",
            7,
            "acme",
        )
        == key
    )
    theirs = {k: fleet.replica.stat(k) for k in (key, ikey)}
    for k in (key, ikey):
        assert fleet.replica.open(k).read() != fleet.source.open(k).read()
    capsys.readouterr()
    fleet.poller.poll()
    assert all(not r["batchItemFailures"] for r in fleet.poller.responses)

    item = fleet.item(key)
    for copies, k in ((item.copies, key), (item.index_copies, ikey)):
        assert copies["aws"].state == "verified"
        gcp = copies["gcp"]
        assert gcp.state == "verified" and gcp.by == "lambda:test"
        assert gcp.version == theirs[k].version  # the object that was there, not a copy
        assert gcp.checksum == verify(fleet.replica, k, [fleet.provider]).checksum
        assert gcp.checksum.startswith("crc32c:")  # GCS's own checksum of its bytes
        assert "another envelope of the same plaintext" in gcp.detail
        assert fleet.replica.stat(k).version == theirs[k].version  # untouched
    assert item.state == "committed"
    t = totals(emf(capsys.readouterr().out))
    assert t["verified"] == 2
    assert t["replicated"] == 0 and t["lineage_conflicts"] == 0 and t["integrity_failed"] == 0
    assert "LINEAGE CONFLICT" not in caplog.text and "INTEGRITY FAILED" not in caplog.text


def test_a_replica_object_that_claims_the_binlog_but_does_not_verify(
    fleet: Fleet, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """GCS holds an envelope whose metadata claims our binlog but whose last chunk was
    altered: the replica copy is an integrity failure (alerted), never overwritten, and a
    redelivery does not count it again."""
    import io

    key = fleet.archive("kingbus__mysql_bin.000011", name="mysql-bin.000011")
    bad = bytearray(fleet.source.open(key).read())
    bad[-20] ^= 0x01
    meta = dict(fleet.source.stat(key).metadata)
    fleet.replica.put(key, io.BytesIO(bytes(bad)), size=len(bad), metadata=meta)
    generation = fleet.replica.stat(key).version
    capsys.readouterr()
    fleet.poller.poll()
    assert fleet.dlq_depth() == 0  # an outcome, not a retry

    item = fleet.item(key)
    assert item.copies["aws"].state == "verified"
    gcp = item.copies["gcp"]
    assert gcp.state == "integrity_failed" and gcp.version == generation
    assert "does not verify" in gcp.detail and f"gs://{fleet.gcs_bucket}/{key}" in gcp.detail
    assert fleet.replica.open(key).read() == bytes(bad)
    assert fleet.replica.stat(key).version == generation
    t = totals(emf(capsys.readouterr().out))
    assert t["integrity_failed"] == 1 and t["lineage_conflicts"] == 0
    assert "INTEGRITY FAILED (replica)" in caplog.text

    sqs = fleet.moto.client("sqs")
    for body in [b for b in fleet.poller.bodies if "ObjectCreated" in b and ".idx." not in b]:
        sqs.send_message(QueueUrl=fleet.poller.queue_url, MessageBody=body)
    fleet.poller.poll()
    t = totals(emf(capsys.readouterr().out))
    assert t["integrity_failed"] == 0 and t["verified"] == 0  # settled: nothing read again
    assert fleet.item(key).copies["gcp"].state == "integrity_failed"


def test_backup_record_and_data_are_verified_replicated_and_catalogued(fleet: Fleet) -> None:
    import hashlib

    from shipper import objects
    from shipper.records import BackupRecord, Verification, write_record

    data = b"-- mysqldump of nothing much\n" * 1000
    sha = hashlib.sha256(data).hexdigest()
    dkey = objects.backup_key("acme", 7, "b1", "mysqldump")
    _sealed(fleet, dkey, data, {"plaintext_sha256": sha, "kind": "backup"})
    rec = BackupRecord(
        id="b1",
        tool="mysqldump",
        tenant="acme",
        server_id=7,
        binlog_file="mysql-bin.000011",
        binlog_pos=4,
        started_at=1539763789.5,
        consistent_at=1539763789.5,
        object_key=dkey,
        plaintext_sha256=sha,
        plaintext_size=len(data),
        verification=Verification("verified", 1539763800.0, "backup take"),
    )
    rkey = write_record(fleet.source, [fleet.provider], rec, tenant_prefix="acme")
    fleet.poller.poll()

    item = fleet.item(rkey)
    assert item.copies["gcp"].state == "verified" and item.record_copies["gcp"].state == "verified"
    (b,) = fleet.catalog.backups("acme", 7)
    assert (b.id, b.object_key, b.binlog_file) == ("b1", dkey, "mysql-bin.000011")
    assert fleet.replica.open(rkey).read() == fleet.source.open(rkey).read()
    assert fleet.catalog.servers("acme") == [7]


def test_kms_denial_retries_then_dead_letters_and_records_nothing(
    moto_iam: IamMoto,
    moto: Moto,
    fake_gcs: FakeGcs,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The function's role cannot kms:Decrypt: the object is not to blame, so it is neither
    recorded nor counted as failed; the message is retried and then dead-lettered (the
    DLQ-depth alarm), and nothing reaches the replica."""
    from functions.aws.verify_replicate import make_handler
    from shipper.catalog.dynamodb import DynamoCatalog
    from shipper.fleet.service import Store, VerifyReplicate
    from shipper.keys.aws_kms import AwsKmsProvider
    from shipper.storage.s3 import S3Backend
    from tests.functions.aws.conftest import (
        FIXTURES,
        MAX_RECEIVE,
        Poller,
        archive_binlog,
        create_catalog_table,
        make_queue,
    )
    from tests.services.cloud import unique

    w = moto_iam.writer
    bucket = unique("iam")
    moto_iam.as_(w, "s3").create_bucket(Bucket=bucket)
    sqs = moto_iam.as_(w, "sqs")
    q, arn, dlq = make_queue(sqs, bucket, moto_iam.as_(w, "s3"))
    kms_key = moto_iam.as_(w, "kms").create_key()["KeyMetadata"]["Arn"]
    writer_store = S3Backend(bucket, client=moto_iam.as_(w, "s3"))
    writer_kms = AwsKmsProvider(kms_key, client=moto_iam.as_(w, "kms"))
    key = archive_binlog(
        writer_store,
        [writer_kms],
        FIXTURES / "kingbus__mysql_bin.000011",
        tmp_path,
        "mysql-bin.000011",
        7,
        "acme",
    )

    table = unique("catalog")
    create_catalog_table(moto.client("dynamodb"), table)
    catalog = DynamoCatalog(table, client=moto.client("dynamodb"))
    gcs_bucket = fake_gcs.bucket()
    from shipper.storage import open_backend

    replica = open_backend(f"gs://{gcs_bucket}", {})
    v = moto_iam.verifier
    service = VerifyReplicate(
        Store(S3Backend(bucket, client=moto_iam.as_(v, "s3")), "aws", bucket),
        Store(replica, "gcp", gcs_bucket),
        [AwsKmsProvider(kms_key, client=moto_iam.as_(v, "kms"))],
        catalog,
        by="lambda:test",
    )
    poller = Poller(sqs, q, arn, make_handler(service))
    capsys.readouterr()
    poller.poll(rounds=10)

    failures = [f for r in poller.responses for f in r["batchItemFailures"]]
    assert len(failures) == 2 * MAX_RECEIVE  # binlog + index, each received MAX_RECEIVE times
    assert poller.errors and "kms:Decrypt" in str(poller.errors[0])
    depth = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages"])
    assert int(depth["Attributes"]["ApproximateNumberOfMessages"]) == 2
    assert catalog.item(key) is None
    assert list(replica.list("acme/")) == []
    assert totals(emf(capsys.readouterr().out)).get("integrity_failed", 0) == 0
