"""The handler's event views over real samples (tests/events, from Powertools' own test
events) and over what moto delivers: S3 via SQS, EventBridge, s3:TestEvent, encoded keys."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from functions.aws.verify_replicate import NotAnObjectEvent, objects_in
from tests.functions.aws.conftest import EVENTS, Fleet, LambdaContext


def load(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def test_s3_event_sample() -> None:
    assert objects_in(load("s3Event.json")) == [
        ("lambda-artifacts-deafc19498e3f2df", "b21b84d653bb07b05b1e6b33684dc11b")
    ]


def test_s3_event_through_sqs_sample() -> None:
    (record,) = load("s3SqsEvent.json")["Records"]
    assert objects_in(json.loads(record["body"])) == [("xxx", "test.pdf")]


def test_eventbridge_object_created_sample() -> None:
    assert objects_in(load("s3EventBridgeNotificationObjectCreatedEvent.json")) == [
        ("example-bucket", "IMG_m7fzo3.jpg")
    ]


def test_test_event_is_skipped_and_other_bodies_refused() -> None:
    assert objects_in({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}) == []
    with pytest.raises(NotAnObjectEvent):
        objects_in({"message": "foo1"})


def test_keys_are_decoded_once() -> None:
    """S3 notifications URL-encode keys (quote_plus): '+' arrives as %2B, ' ' as '+'."""
    body = load("s3Event.json")
    body["Records"][0]["s3"]["object"]["key"] = "acme/mysql/1/2026/11/db%2B1+bin.000001.zst.enc"
    assert objects_in(body)[0][1] == "acme/mysql/1/2026/11/db+1 bin.000001.zst.enc"


def test_encoded_key_from_moto_notification_is_verified(fleet: Fleet) -> None:
    """A binlog name with '+' in it: decoding once finds the object; twice (or never) would
    look for another key and find nothing."""
    key = fleet.archive("kingbus__mysql_bin.000011", name="db+1-bin.000011")
    fleet.poller.poll()
    assert "%2B" in "".join(fleet.poller.bodies)  # moto encoded it
    assert fleet.item(key).copies["gcp"].state == "verified"


def test_sample_batches_report_item_failures(fleet: Fleet) -> None:
    """Powertools' sample SQS batches: bodies that are no S3 event, and an event for a
    bucket this function does not verify, are reported as failures, one by one."""
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    from functions.aws.verify_replicate import make_handler

    handler = make_handler(fleet.service)
    sqs = load("sqsEvent.json")
    with pytest.raises(BatchProcessingError):  # all failed: the invocation errors
        handler(sqs, LambdaContext())
    mixed = {"Records": [*load("s3SqsEvent.json")["Records"], *sqs["Records"]]}
    for r in mixed["Records"]:
        r["eventSource"] = "aws:sqs"
    body = json.loads(mixed["Records"][0]["body"])
    body["Records"][0]["s3"]["bucket"]["name"] = fleet.bucket
    body["Records"][0]["s3"]["object"]["key"] = "acme/mysql/7/2026/11/gone.000001.zst.enc"
    mixed["Records"][0]["body"] = json.dumps(body)
    resp = handler(mixed, LambdaContext())
    failed = {f["itemIdentifier"] for f in resp["batchItemFailures"]}
    assert failed == {r["messageId"] for r in sqs["Records"]}  # the S3 one succeeded (missing)


def test_eventbridge_event_invoking_the_function_directly(fleet: Fleet) -> None:
    from functions.aws.verify_replicate import make_handler

    key = fleet.archive("kingbus__mysql_bin.000011", name="mysql-bin.000011")
    event = load("s3EventBridgeNotificationObjectCreatedEvent.json")
    event["detail"]["bucket"]["name"] = fleet.bucket
    event["detail"]["object"]["key"] = key
    assert make_handler(fleet.service)(event, LambdaContext()) == {"statuses": ["replicated"]}
    assert fleet.item(key).copies["gcp"].state == "verified"


__all__ = ["Path"]
