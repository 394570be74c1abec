"""The AWS side of the fleet on emulators: moto S3 -> SQS (the bucket notification moto
delivers in server mode) -> the Lambda handler, replicating to fake-gcs-server and
recording in DynamoDB on moto.

:class:`Poller` plays the Lambda event source mapping: it receives up to ten
messages, hands them to the handler as an SQS batch event, deletes the ones the
handler did not report in ``batchItemFailures`` and makes the failed ones visible
again at once, so SQS redrives them to the dead-letter queue after
``maxReceiveCount`` receives, as it does in AWS.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shipper import objects
from shipper.binlog import scan_file
from shipper.catalog.dynamodb import DynamoCatalog
from shipper.fleet.service import Store, VerifyReplicate
from shipper.keys.aws_kms import AwsKmsProvider
from shipper.pipeline.upload import ObjectWriter, SealedBinlog
from shipper.storage import StorageBackend, open_backend
from tests.services.cloud import FakeGcs, Moto, unique

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "binlogs"
EVENTS = Path(__file__).resolve().parents[2] / "events"
MAX_RECEIVE = 2


def create_catalog_table(client: Any, name: str) -> None:
    """The table infra/terraform creates (docs/catalog.md): pk/sk, LSI by_first_event."""
    client.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "first_event_us", "AttributeType": "N"},
        ],
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        LocalSecondaryIndexes=[
            {
                "IndexName": "by_first_event",
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "first_event_us", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )


@dataclass
class LambdaContext:
    """What the Lambda runtime passes as ``context`` (the fields Powertools reads)."""

    function_name: str = "verify-replicate"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:verify-replicate"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Poller:
    """The event source mapping: SQS queue -> handler -> delete, or redrive."""

    sqs: Any
    queue_url: str
    queue_arn: str
    handler: Callable[[dict[str, Any], Any], dict[str, Any]]
    responses: list[dict[str, Any]] = field(default_factory=list)
    #: every message body delivered, in order (to redeliver one by hand)
    bodies: list[str] = field(default_factory=list)
    #: invocations that raised (every record of the batch failed)
    errors: list[Exception] = field(default_factory=list)

    def poll(self, rounds: int = 20) -> int:
        """Deliver batches until the queue stays empty; returns messages handled."""
        handled = idle = 0
        for _ in range(rounds):
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1 if idle == 0 else 0,
                AttributeNames=["All"],
            ).get("Messages", [])
            if not got:
                idle += 1
                if idle >= 2:
                    break
                continue
            idle = 0
            handled += len(got)
            self.deliver(got)
        return handled

    def deliver(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        self.bodies.extend(m["Body"] for m in messages)
        event = {"Records": [self._record(m) for m in messages]}
        try:
            resp = self.handler(event, LambdaContext())
        except Exception as e:
            # Powertools raises when every record failed: the invocation errors (the
            # Lambda Errors metric) and the mapping returns the whole batch to the queue.
            self.errors.append(e)
            resp = {"batchItemFailures": [{"itemIdentifier": m["MessageId"]} for m in messages]}
        self.responses.append(resp)
        failed = {f["itemIdentifier"] for f in resp.get("batchItemFailures", [])}
        for m in messages:
            if m["MessageId"] in failed:
                self.sqs.change_message_visibility(
                    QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                )
            else:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=m["ReceiptHandle"])
        return resp

    def _record(self, m: dict[str, Any]) -> dict[str, Any]:
        return {
            "messageId": m["MessageId"],
            "receiptHandle": m["ReceiptHandle"],
            "body": m["Body"],
            "attributes": m.get("Attributes", {}),
            "messageAttributes": {},
            "md5OfBody": m.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": "us-east-1",
        }


def make_queue(sqs: Any, bucket: str, s3: Any) -> tuple[str, str, str]:
    """Queue + DLQ (maxReceiveCount) and the bucket's ObjectCreated notification to it."""
    dlq = sqs.create_queue(QueueName=unique("dlq"))["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    q = sqs.create_queue(
        QueueName=unique("verify"),
        Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE)}
            ),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=q, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    return q, arn, dlq


@dataclass
class Fleet:
    moto: Moto
    bucket: str
    gcs_bucket: str
    kms_key: str
    table: str
    source: StorageBackend
    replica: StorageBackend
    provider: AwsKmsProvider
    catalog: DynamoCatalog
    service: VerifyReplicate
    poller: Poller
    dlq_url: str
    tmp: Path

    def archive(self, fixture: str, *, name: str, server_id: int = 7, tenant: str = "acme") -> str:
        """Seal and upload a fixture binlog (and its transaction index) as the shipper does;
        returns the binlog object's key."""
        return archive_binlog(
            self.source, [self.provider], FIXTURES / fixture, self.tmp, name, server_id, tenant
        )

    def item(self, key: str) -> Any:
        return self.catalog.item(key)

    def dlq_depth(self) -> int:
        attrs = self.moto.client("sqs").get_queue_attributes(
            QueueUrl=self.dlq_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"])


def archive_binlog(
    backend: StorageBackend,
    providers: list[Any],
    path: Path,
    tmp: Path,
    name: str,
    server_id: int,
    tenant: str,
) -> str:
    staged = tmp / "staged" / name
    staged.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, staged)
    info = scan_file(staged)
    assert info.first_timestamp is not None
    key = objects.binlog_key(tenant, server_id, info.first_timestamp, name)
    fields, header = objects.describe(
        info, tenant=tenant, server_id=server_id, server_uuid="", trace_id="t"
    )
    b = SealedBinlog(
        name=name,
        staged=staged,
        sealed=staged.with_suffix(".sealed"),
        sha256=info.sha256,
        size=info.size,
        context=objects.context_for_key(key),
        header_meta=header,
        metadata=objects.build_metadata(fields),
    )
    w = ObjectWriter(providers=providers, chunk_size=64 * 1024)
    k, _ = w.put(backend, key, b, lambda *_a: None)
    w.put_index(backend, k, info.index.to_bytes(), b, tenant)
    return k


@pytest.fixture
def fleet(moto: Moto, fake_gcs: FakeGcs, tmp_path: Path) -> Iterator[Fleet]:
    from functions.aws.verify_replicate import make_handler

    bucket = moto.bucket(versioning=True)
    gcs_bucket = fake_gcs.bucket()
    kms_key = moto.kms_key()
    table = unique("catalog")
    create_catalog_table(moto.client("dynamodb"), table)
    sqs = moto.client("sqs")
    q, arn, dlq = make_queue(sqs, bucket, moto.s3)
    s3_opts = {"endpoint_url": moto.endpoint_url, "region": moto.region}
    source = open_backend(f"s3://{bucket}", s3_opts)
    replica = open_backend(f"gs://{gcs_bucket}", {})
    provider = AwsKmsProvider(kms_key, region=moto.region, endpoint_url=moto.endpoint_url)
    catalog = DynamoCatalog(table, client=moto.client("dynamodb"))
    service = VerifyReplicate(
        Store(source, "aws", bucket),
        Store(replica, "gcp", gcs_bucket),
        [provider],
        catalog,
        by="lambda:test",
    )
    poller = Poller(sqs, q, arn, make_handler(service))
    yield Fleet(
        moto,
        bucket,
        gcs_bucket,
        kms_key,
        table,
        source,
        replica,
        provider,
        catalog,
        service,
        poller,
        dlq,
        tmp_path,
    )


def emf(out: str) -> list[dict[str, Any]]:
    """The CloudWatch EMF blobs printed to stdout (one per object)."""
    blobs = []
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            blobs.append(json.loads(line))
    return blobs


def totals(blobs: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for b in blobs:
        for d in b["_aws"]["CloudWatchMetrics"]:
            for m in d["Metrics"]:
                v = b[m["Name"]]
                out[m["Name"]] = out.get(m["Name"], 0) + (sum(v) if isinstance(v, list) else v)
    return out


@dataclass
class IamMoto(Moto):
    """A moto server enforcing IAM: ``writer`` may do anything; ``verifier`` may read the
    bucket but has no KMS rights (the function's role without kms:Decrypt)."""

    writer: dict[str, str] = field(default_factory=dict)
    verifier: dict[str, str] = field(default_factory=dict)

    def as_(self, creds: dict[str, str], service: str) -> Any:
        return self.client(service, **creds)


_IAM_SETUP_CALLS = 6


@pytest.fixture(scope="session")
def moto_iam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IamMoto]:
    from tests.services.cloud import iam_moto_server

    with iam_moto_server(tmp_path_factory, "moto-iam", _IAM_SETUP_CALLS) as url:
        m = IamMoto(endpoint_url=url)
        iam = m.client("iam")
        users: dict[str, dict[str, str]] = {}
        # exactly _IAM_SETUP_CALLS actions before enforcement begins
        for user, actions in (("writer", ["*"]), ("verifier", ["s3:GetObject", "s3:ListBucket"])):
            iam.create_user(UserName=user)
            key = iam.create_access_key(UserName=user)["AccessKey"]
            doc = {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
            }
            iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(doc))
            users[user] = {
                "aws_access_key_id": key["AccessKeyId"],
                "aws_secret_access_key": key["SecretAccessKey"],
            }
        m.writer, m.verifier = users["writer"], users["verifier"]
        yield m
