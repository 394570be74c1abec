"""functions/gcp/main.py inside a real functions-framework server: CloudEvents built from
the object resource fake-gcs-server returns, POSTed in binary and structured mode; the
object is verified, copied to moto S3 with If-None-Match and recorded in DynamoDB (moto);
the structured log lines are what the log-based metrics count."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from shipper import envelope, objects
from tests.functions.gcp.conftest import EVENTS, GcpFleet, metric_events, start_fleet, stop
from tests.services.cloud import FakeGcs, Moto

INDEX = ".idx.zst.enc"


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_object_is_verified_replicated_and_recorded(gcp_fleet: GcpFleet, mode: str) -> None:
    f = gcp_fleet
    key = f.archive("mdbpoc__domain_id_0_mariadb-repl-bin.000002", name="mysql-bin.000002")
    for k in (key, key.replace(".zst.enc", INDEX)):
        a = f.deliver(k, mode=mode)
        assert a.status == 200, a.body
        assert f.replica.open(k).read() == f.source.open(k).read()

    item = f.item(key)
    assert item.copies["gcp"].state == "verified"
    assert item.copies["aws"].state == "verified"
    assert item.index_copies["gcp"].state == "verified"
    assert item.index_copies["aws"].state == "verified"
    assert item.copies["gcp"].version == f.source.stat(key).version  # the generation
    assert item.copies["aws"].version == f.replica.stat(key).version  # the S3 version id
    assert item.copies["aws"].by == "cloudfunction:test-verify-replicate"
    (b,) = f.catalog.binlogs("acme", 7)
    assert b.name == "mysql-bin.000002" and b.index_key and b.first_ts

    lines = f.fn.new_lines()
    assert sorted(metric_events(lines)) == [
        ("replicated", "acme", "7"),
        ("replicated", "acme", "7"),
        ("verified", "acme", "7"),
        ("verified", "acme", "7"),
    ]
    verified = [x for x in lines if x.get("event") == "verified"]
    assert sum(x["bytes"] for x in verified) == (
        f.source.stat(key).size + f.source.stat(key.replace(".zst.enc", INDEX)).size
    )
    assert all(x["severity"] == "INFO" for x in lines if "event" in x)


def test_the_real_sample_event_is_parsed_and_a_foreign_bucket_refused(gcp_fleet: GcpFleet) -> None:
    """The conformance sample (an object outside the archive's bucket): the typed view
    reads it, and the function refuses it by name with a 500 (retried, visible)."""
    sample = json.loads((EVENTS / "gcf-storage-cloudevent-input.json").read_text())
    a = gcp_fleet.fn.structured(sample["data"], event_id=sample["id"])
    assert a.status == 500
    assert "'some-bucket'" in a.body and "ARCHIVE_BUCKET" in a.body
    assert "Traceback" not in gcp_fleet.fn.stderr.read_text()
    lines = gcp_fleet.fn.new_lines()
    assert metric_events(lines) == []
    (line,) = [x for x in lines if x["severity"] == "ERROR"]
    assert "'some-bucket'" in line["message"] and line["event_id"] == sample["id"]


def test_a_key_outside_the_layout_is_acknowledged_and_not_read(gcp_fleet: GcpFleet) -> None:
    f = gcp_fleet
    f.source.put("acme/notes.txt", io.BytesIO(b"hello"), size=5, metadata={})
    a = f.deliver("acme/notes.txt")
    assert a.status == 200
    lines = f.fn.new_lines()
    assert metric_events(lines) == []
    assert any(x.get("status") == "outside_layout" for x in lines)


def test_redelivered_event_changes_nothing(gcp_fleet: GcpFleet) -> None:
    f = gcp_fleet
    key = f.archive("kingbus__mysql_bin.000011", name="mysql-bin.000011")
    res = f.resource(key)
    assert f.fn.binary(res, event_id="e-1").status == 200
    before = f.item(key).attrs
    version = f.replica.stat(key).version
    f.fn.new_lines()

    # Eventarc redelivers the same event (same id), then again in the other mode
    assert f.fn.binary(res, event_id="e-1").status == 200
    assert f.fn.structured(res, event_id="e-1").status == 200
    assert f.item(key).attrs == before
    assert f.replica.stat(key).version == version
    lines = f.fn.new_lines()
    assert metric_events(lines) == []
    assert [x["status"] for x in lines if x.get("key") == key] == ["already", "already"]


def _tampered(f: GcpFleet, key: str) -> None:
    """A sealed object whose last ciphertext byte is flipped (its metadata intact)."""
    plaintext = (ROOT_FIXTURE).read_bytes()
    meta = {"binlog_name": "mysql-bin.000004", "plaintext_size": str(len(plaintext))}
    out = io.BytesIO()
    envelope.seal(
        io.BytesIO(plaintext),
        out,
        providers=[f.provider],
        context=objects.context_for_key(key),
        metadata=meta,
    )
    raw = bytearray(out.getvalue())
    raw[-20] ^= 0x01
    f.source.put(key, io.BytesIO(bytes(raw)), size=len(raw), metadata=meta)


ROOT_FIXTURE = EVENTS.parent / "fixtures" / "binlogs" / "kingbus__mysql_bin.000011"


def test_tampered_object_is_recorded_counted_and_never_replicated(gcp_fleet: GcpFleet) -> None:
    f = gcp_fleet
    key = objects.binlog_key("acme", 7, 1_700_000_000, "mysql-bin.000004")
    _tampered(f, key)
    a = f.deliver(key)
    assert a.status == 200  # an outcome, not a retry: the object is evidence
    item = f.item(key)
    assert item.copies["gcp"].state == "integrity_failed"
    assert "aws" not in item.copies
    assert not list(f.replica.list(""))
    lines = f.fn.new_lines()
    assert metric_events(lines) == [("integrity_failed", "acme", "7")]
    (line,) = [x for x in lines if x.get("event") == "integrity_failed"]
    assert line["severity"] == "ERROR" and line["key"] == key

    # redelivered: still failed, still not replicated, counted again (it is still bad)
    assert f.deliver(key).status == 200
    assert f.item(key).copies["gcp"].state == "integrity_failed"
    assert not list(f.replica.list(""))


def test_object_deleted_before_its_event_arrived(gcp_fleet: GcpFleet) -> None:
    f = gcp_fleet
    key = f.archive("kingbus__mysql_bin.000011", name="mysql-bin.000011")
    res = f.resource(key)
    f.gcs.client().bucket(f.bucket).blob(key).delete()
    a = f.fn.binary(res)
    assert a.status == 200  # nothing to retry for: acknowledged
    assert f.item(key) is None
    assert not list(f.replica.list(""))
    lines = f.fn.new_lines()
    assert metric_events(lines) == []
    assert [x["status"] for x in lines if x.get("key") == key] == ["missing"]


def test_different_object_at_the_replica_key_is_a_lineage_conflict(gcp_fleet: GcpFleet) -> None:
    f = gcp_fleet
    key = f.archive("kingbus__mysql_bin.000011", name="mysql-bin.000011")
    f.replica.put(key, io.BytesIO(b"another binlog"), size=14, metadata={})
    theirs = f.replica.stat(key)
    a = f.deliver(key)
    assert a.status == 200
    assert f.replica.open(key).read() == b"another binlog"  # never overwritten
    assert f.replica.stat(key).version == theirs.version
    item = f.item(key)
    assert item.copies["gcp"].state == "verified"
    assert item.copies["aws"].state == "lineage_conflict"
    lines = f.fn.new_lines()
    assert sorted(metric_events(lines)) == [
        ("lineage_conflicts", "acme", "7"),
        ("verified", "acme", "7"),
    ]
    (line,) = [x for x in lines if x.get("event") == "lineage_conflicts"]
    assert line["severity"] == "ERROR"


def test_another_envelope_of_the_same_binlog_at_the_s3_key_is_equivalent(
    gcp_fleet: GcpFleet,
) -> None:
    """S3 already holds the same binlog and index sealed again (new data key and nonces):
    the host drained its failover backlog there before this event was redelivered. The
    function verifies it in full and records it as the S3 copy; no conflict line, nothing
    copied, nothing alerted."""
    from shipper.fleet.verify import verify
    from tests.functions.aws.conftest import archive_binlog
    from tests.functions.gcp.conftest import FIXTURES

    f = gcp_fleet
    key = f.archive("kingbus__mysql_bin.000011", name="mysql-bin.000011")
    ikey = key.replace(".zst.enc", INDEX)
    work = f.tmp / "host-reseal"
    work.mkdir()
    fixture = FIXTURES / "kingbus__mysql_bin.000011"
    assert (
        archive_binlog(f.replica, [f.provider], fixture, work, "mysql-bin.000011", 7, "acme") == key
    )
    theirs = {k: f.replica.stat(k) for k in (key, ikey)}
    for k in (key, ikey):
        assert f.replica.open(k).read() != f.source.open(k).read()
        a = f.deliver(k)
        assert a.status == 200, a.body

    item = f.item(key)
    for copies, k in ((item.copies, key), (item.index_copies, ikey)):
        assert copies["gcp"].state == "verified"
        aws = copies["aws"]
        assert aws.state == "verified" and aws.version == theirs[k].version
        assert aws.checksum == verify(f.replica, k, [f.provider]).checksum
        assert f.replica.stat(k).version == theirs[k].version  # untouched
    lines = f.fn.new_lines()
    assert metric_events(lines) == [("verified", "acme", "7")] * 2
    assert [x["status"] for x in lines if "event" not in x and "status" in x] == ["equivalent"] * 2
    assert not [x for x in lines if "CONFLICT" in x["message"] or x["severity"] == "ERROR"]


def test_an_s3_object_that_claims_the_binlog_but_does_not_verify(gcp_fleet: GcpFleet) -> None:
    """S3 holds an envelope with our metadata whose last chunk was altered: an integrity
    failure of the S3 copy (the integrity_failed metric and its alert), never
    overwritten, settled for later redeliveries."""
    f = gcp_fleet
    key = f.archive("kingbus__mysql_bin.000011", name="mysql-bin.000011")
    bad = bytearray(f.source.open(key).read())
    bad[-20] ^= 0x01
    f.replica.put(key, io.BytesIO(bytes(bad)), size=len(bad), metadata=f.source.stat(key).metadata)
    version = f.replica.stat(key).version
    a = f.deliver(key)
    assert a.status == 200, a.body  # an outcome: the object is evidence, not a retry
    item = f.item(key)
    assert item.copies["gcp"].state == "verified"
    assert item.copies["aws"].state == "integrity_failed", item.copies["aws"].detail
    assert f.replica.open(key).read() == bytes(bad) and f.replica.stat(key).version == version
    lines = f.fn.new_lines()
    assert sorted(metric_events(lines)) == [
        ("integrity_failed", "acme", "7"),
        ("verified", "acme", "7"),
    ]
    (line,) = [x for x in lines if x.get("event") == "integrity_failed"]
    assert line["severity"] == "ERROR" and line["status"] == "replica_integrity_failed"
    assert f"s3://{f.s3_bucket}/{key}" in line["message"] and "does not verify" in line["message"]

    assert f.deliver(key).status == 200  # redelivered: settled, not counted again
    assert metric_events(f.fn.new_lines()) == []


def test_the_legacy_background_event_is_converted_and_read(gcp_fleet: GcpFleet) -> None:
    """functions-framework turns a legacy ``google.storage.object.finalize`` POST into the
    CloudEvent: the function reads its bucket (here, not the archive's: refused by name)."""
    sample = (EVENTS / "gcf-storage-legacy-input.json").read_bytes()
    a = gcp_fleet.fn.post({"Content-Type": "application/json"}, sample)
    assert a.status == 500 and "'some-bucket'" in a.body


def test_a_failed_copy_to_s3_is_counted_retried_and_then_done(
    moto: Moto, fake_gcs: FakeGcs, tmp_path: Path
) -> None:
    f = start_fleet(moto, fake_gcs, tmp_path, replica_exists=False)
    try:
        key = f.archive("kingbus__mysql_bin.000011", name="mysql-bin.000011")
        a = f.deliver(key)
        assert a.status == 500  # Eventarc redelivers
        assert f.s3_bucket in a.body
        assert "Traceback" not in f.fn.stderr.read_text()
        item = f.item(key)
        assert item.copies["gcp"].state == "verified" and "aws" not in item.copies
        lines = f.fn.new_lines()
        assert metric_events(lines) == [("replication_failed", "acme", "7")]
        (line,) = [x for x in lines if x.get("event") == "replication_failed"]
        assert line["severity"] == "ERROR"

        # the replicator's bucket appears (credentials fixed): the redelivery finishes it
        moto.s3.create_bucket(Bucket=f.s3_bucket)
        assert f.deliver(key).status == 200
        assert f.replica.open(key).read() == f.source.open(key).read()
        assert f.item(key).copies["aws"].state == "verified"
        assert sorted(metric_events(f.fn.new_lines())) == [
            ("replicated", "acme", "7"),
            ("verified", "acme", "7"),
        ]
    finally:
        stop(f.fn)


def test_a_data_key_that_cannot_be_unwrapped_is_retried_not_recorded(
    moto: Moto, fake_gcs: FakeGcs, tmp_path: Path
) -> None:
    """The function's KMS key is not the one the object's data key is wrapped with (a
    misconfigured or rotated-away key): not the object's fault, so no catalog entry, no
    copy, no metric; a 500, so Eventarc retries, and an error line naming the object."""
    f = start_fleet(moto, fake_gcs, tmp_path, function_key=moto.kms_key())
    try:
        key = f.archive("kingbus__mysql_bin.000011", name="mysql-bin.000011")
        a = f.deliver(key)
        assert a.status == 500, a.body
        assert "data key" in a.body
        assert f.item(key) is None
        assert not list(f.replica.list(""))
        lines = f.fn.new_lines()
        assert metric_events(lines) == []
        assert any(x.get("severity") == "ERROR" and x.get("key") == key for x in lines)
    finally:
        stop(f.fn)
