"""One fixture, four backends: the contract suite runs unchanged on each.

Thresholds are small so multipart / resumable paths run on a few MiB:
S3 parts of 5 MiB (S3's floor), GCS chunks of 1 MiB above 1 MiB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shipper.storage.base import StorageBackend
from shipper.storage.file import FileBackend
from shipper.storage.memory import MemoryBackend
from tests.services.cloud import FakeGcs, Moto

MiB = 1 << 20
BIG = 11 * MiB + 123  # above every backend's single-request threshold below


@dataclass
class Target:
    """A fresh backend plus what a test needs to look behind it."""

    kind: str
    backend: Any
    #: names of multipart/resumable uploads still open (S3 only; [] elsewhere)
    open_uploads: Callable[[], list[str]]
    #: a second, independent handle on the same place (another "host")
    twin: Callable[[], StorageBackend]


def _s3(moto: Moto) -> Target:
    from shipper.storage.s3 import S3Backend

    bucket = moto.bucket()

    def make() -> S3Backend:
        return S3Backend(
            bucket,
            "tenant-a",
            endpoint_url=moto.endpoint_url,
            region=moto.region,
            multipart_threshold=5 * MiB,
            part_size=5 * MiB,
            max_concurrency=3,
        )

    s3 = moto.s3

    def uploads() -> list[str]:
        return [u["Key"] for u in s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])]

    return Target("s3", make(), uploads, make)


def _gcs(fake_gcs: FakeGcs) -> Target:
    from shipper.storage.gcs import GCSBackend

    bucket = fake_gcs.bucket()

    def make() -> GCSBackend:
        return GCSBackend(
            bucket, "tenant-a", client=fake_gcs.client(), chunk_size=MiB, resumable_threshold=MiB
        )

    return Target("gcs", make(), lambda: [], make)


def _file(tmp_path: Path) -> Target:
    root = tmp_path / "archive"

    def leftovers() -> list[str]:
        return [str(p) for p in root.rglob(".tmp-*")] if root.exists() else []

    return Target("file", FileBackend(root), leftovers, lambda: FileBackend(root))


def _memory() -> Target:
    b = MemoryBackend("contract")
    return Target("memory", b, lambda: [], lambda: b)


@pytest.fixture(params=["memory", "file", "s3", "gcs"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    kind = request.param
    if kind == "s3":
        yield _s3(request.getfixturevalue("moto"))
    elif kind == "gcs":
        yield _gcs(request.getfixturevalue("fake_gcs"))
    elif kind == "file":
        yield _file(tmp_path)
    else:
        yield _memory()
