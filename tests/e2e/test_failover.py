"""The primary cloud 100% down: its circuit opens, binlogs fail over to the other cloud,
a restart keeps the circuit open, and the backlog drains back once the primary returns.

Real MariaDB, moto server and fake-gcs-server, each cloud behind a fault proxy
that can answer every request with 503 (``down``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shipper.pipeline.ship import Shipper
from shipper.storage.breaker import CLOSED, HALF_OPEN, OPEN
from tests.helpers import closed_binlogs, parse, rotate
from tests.integration.test_alerts import alerts_section, routing_key
from tests.integration.test_faults import binlog_objects, config
from tests.services.cloud import FakeGcs, Moto
from tests.services.faultproxy import FaultProxy, wait_until
from tests.services.pagerduty import Receiver

pytestmark = pytest.mark.mariadb

COOLDOWN = 5


@pytest.fixture()
def proxies(moto: Moto, fake_gcs: FakeGcs) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    with (
        FaultProxy(moto.endpoint_url, flavor="s3") as s3p,
        FaultProxy(fake_gcs.endpoint_url, flavor="gcs") as gsp,
    ):
        yield s3p, gsp


def test_failover_restart_and_drain(
    mariadb_factory,  # type: ignore[no-untyped-def]
    moto: Moto,
    fake_gcs: FakeGcs,
    proxies: tuple[FaultProxy, FaultProxy],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    receiver: Receiver,
) -> None:
    """The PagerDuty stand-in ``receiver`` sees the real breaker's trigger and resolve."""
    s3p, gsp = proxies
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gsp.url)
    server = mariadb_factory(server_id=62)
    s3_bucket, gs_bucket = moto.bucket(), fake_gcs.bucket()
    s3, gs = f"s3://{s3_bucket}/a", f"gs://{gs_bucket}/a"
    text = config(
        tmp_path / "state",
        server,
        s3=(s3, s3p.url),
        gs=gs,
        routing='primary = "aws"',  # gs is the replica: written only on failover
        resilience="failover = true\nbreaker_threshold = 2\n"
        f"breaker_cooldown = {COOLDOWN}\nretry_attempts = 2\nretry_base = 0.01",
    ) + alerts_section(receiver.url, routing_key(tmp_path))
    cfg = parse(text)
    shipper = Shipper(cfg)

    def committed() -> list[str]:
        return [r.name for r in shipper.manifest.all() if r.state == "committed"]

    # healthy: the primary only
    rotate(server, 2, rows=20)
    assert shipper.run_once().ok
    healthy = closed_binlogs(server)
    assert committed() == healthy
    assert all(set(shipper.manifest.placements(n)) == {s3} for n in healthy)

    # both clouds down: the circuit opens, and nothing is committed that no cloud verified
    s3p.down = gsp.down = True
    rotate(server, 2, rows=20)
    for _ in range(cfg.resilience.breaker_threshold):
        res = shipper.run_once()
        assert not res.ok and res.blocked
    breaker = shipper.resilient.breakers[s3]
    assert breaker.state == OPEN
    assert committed() == healthy
    assert (
        shipper.metrics.registry.get_sample_value("binlog_shipper_circuit_open", {"target": s3})
        == 1.0
    )

    # the secondary answers again: the held-back binlogs fail over to it and commit
    gsp.down = False
    res = shipper.run_once()
    failed_over = closed_binlogs(server)[len(healthy) :]
    assert sorted(res.shipped) == failed_over
    assert committed() == healthy + failed_over
    assert shipper.manifest.backlog(s3) == failed_over  # "needs replication back"
    for n in failed_over:
        p = shipper.manifest.placements(n)
        assert p[gs].state == "verified" and p[s3].state == "pending"
    assert binlog_objects(b.name for b in fake_gcs.client().list_blobs(gs_bucket)) == dict.fromkeys(
        failed_over, 1
    )
    circuit = [e["detail"] for e in shipper.manifest.journal_entries("circuit")]
    assert circuit[0]["to"] == OPEN and circuit[0]["target"] == s3
    failovers = [e["binlog"] for e in shipper.manifest.journal_entries("failover")]
    assert failovers == failed_over, failovers
    circuit_key = f"circuit/{s3}"
    wait_until(lambda: len(receiver.events) >= 1, timeout=30)
    assert [(a, k.endswith(circuit_key)) for a, k in receiver.actions()] == [("trigger", True)]

    # a restart while the circuit is open keeps it open: the primary is not even asked
    shipper.close()
    shipper = Shipper(parse(text))
    breaker = shipper.resilient.breakers[s3]
    assert breaker.state == OPEN
    asked = s3p.requests
    rotate(server, 1, rows=20)
    res = shipper.run_once()
    assert res.shipped == closed_binlogs(server)[-1:]
    assert s3p.requests == asked
    failed_over = closed_binlogs(server)[len(healthy) :]
    assert shipper.manifest.backlog(s3) == failed_over

    # the primary comes back; after the cool-down one probe closes the circuit and
    # the backlog drains to it, oldest first
    s3p.down = False
    wait_until(lambda: breaker.state == HALF_OPEN, timeout=COOLDOWN + 30)
    rotate(server, 1, rows=20)
    res = shipper.run_once()
    assert res.ok, res
    assert breaker.state == CLOSED
    assert res.backfilled[s3] == failed_over
    assert shipper.manifest.backlog(s3) == []
    names = closed_binlogs(server)
    assert committed() == names
    versions = moto.s3.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert binlog_objects(o["Key"] for o in versions) == dict.fromkeys(names, 1)
    for n in names:
        assert shipper.manifest.placements(n)[s3].state == "verified"
    moves = [
        (e["detail"]["from"], e["detail"]["to"])
        for e in shipper.manifest.journal_entries("circuit")
    ]
    assert moves == [(CLOSED, OPEN), (OPEN, HALF_OPEN), (HALF_OPEN, CLOSED)]
    # the standing problem alerted once (across the restart) and resolves once
    wait_until(lambda: len(receiver.events) >= 2, timeout=30)
    assert [(a, k.endswith(circuit_key)) for a, k in receiver.actions()] == [
        ("trigger", True),
        ("resolve", True),
    ]
    assert (
        shipper.metrics.registry.get_sample_value(
            "binlog_circuit_state", {"tenant": "acme", "target": s3}
        )
        == 0.0
    )
    assert (
        shipper.metrics.registry.get_sample_value("binlog_shipper_circuit_open", {"target": s3})
        == 0.0
    )
    shipper.close()


def test_sigkill_during_a_failover_pass_leaves_no_gap_and_no_duplicate(
    mariadb_factory,  # type: ignore[no-untyped-def]
    moto: Moto,
    fake_gcs: FakeGcs,
    proxies: tuple[FaultProxy, FaultProxy],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`run --once` is SIGKILLed while it fails binlogs over to the secondary (the
    primary's circuit open); the restarted shipper commits the rest, each binlog once."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys

    from tests.helpers import fill_binlogs

    s3p, gsp = proxies
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gsp.url)
    server = mariadb_factory(server_id=65)
    s3_bucket, gs_bucket = moto.bucket(), fake_gcs.bucket()
    s3, gs = f"s3://{s3_bucket}/a", f"gs://{gs_bucket}/a"
    state = tmp_path / "state"
    text = config(
        state,
        server,
        s3=(s3, s3p.url),
        gs=gs,
        routing='primary = "aws"',
        resilience="failover = true\nbreaker_threshold = 1\nbreaker_cooldown = 3600\n"
        "retry_attempts = 2\nretry_base = 0.01",
    )
    (state / "config.toml").write_text(text)
    s3p.down = True
    rotate(server, 1, rows=20)
    shipper = Shipper(parse(text))
    shipper.run_once()  # the primary fails once: its circuit opens, the binlog fails over
    assert shipper.resilient.breakers[s3].state == OPEN
    shipper.close()

    fill_binlogs(server, 8, mb=3)
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipper", "run", "--once", "--state-dir", str(state)],
        env={**os.environ, "STORAGE_EMULATOR_HOST": gsp.url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def committed_now() -> int:
        with sqlite3.connect(f"file:{state / 'manifest.sqlite'}?mode=ro", uri=True) as db:
            return int(
                db.execute("SELECT COUNT(*) FROM binlogs WHERE state = 'committed'").fetchone()[0]
            )

    try:
        wait_until(lambda: committed_now() >= 3 or proc.poll() is not None, timeout=120)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the pass ended before it could be killed"

    shipper = Shipper(parse(text))
    try:
        for _ in range(3):
            if not shipper.manifest.pending():
                break
            shipper.run_once()
        names = closed_binlogs(server)
        rows = sorted(shipper.manifest.all(), key=lambda r: r.sequence)
        assert [r.name for r in rows] == names  # no gap
        assert all(r.state == "committed" for r in rows), [(r.name, r.state) for r in rows]
        stamps = [r.committed_at or 0 for r in rows]
        assert stamps == sorted(stamps)
        blobs = fake_gcs.client().list_blobs(gs_bucket)
        assert binlog_objects(b.name for b in blobs) == dict.fromkeys(names, 1)  # none twice
        assert shipper.manifest.backlog(s3) == names
    finally:
        shipper.close()
