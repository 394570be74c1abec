"""The circuit breaker's states, persisted in a real manifest, on a memory backend."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from shipper.errors import ConfigError, ObjectNotFound
from shipper.manifest import Manifest
from shipper.storage.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakingBackend,
    CircuitBreaker,
    CircuitOpen,
)
from shipper.storage.memory import MemoryBackend
from tests.helpers import parse


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def breaker(m: Manifest, clock: Clock, changes: list[tuple[str, str]]) -> CircuitBreaker:
    return CircuitBreaker(
        "s3://b/p",
        threshold=3,
        cooldown=60,
        store=m,
        clock=clock,
        on_change=lambda _t, old, new, _e: changes.append((old, new)),
    )


def test_opens_after_n_consecutive_transient_failures_probes_after_cooldown(
    tmp_path: Path,
) -> None:
    clock, changes = Clock(), []  # type: ignore[var-annotated]
    with Manifest(tmp_path / "m.sqlite") as m:
        b = breaker(m, clock, changes)
        b.failed("503")
        b.failed("503")
        b.succeeded()  # not consecutive: the count starts over
        for _ in range(3):
            b.before_call()
            b.failed("503")
        assert b.state == OPEN and b.is_open
        with pytest.raises(CircuitOpen, match="circuit open after 3 consecutive"):
            b.before_call()
        clock.now += 60
        assert b.state == HALF_OPEN
        b.before_call()  # the probe
        with pytest.raises(CircuitOpen, match="a probe is running"):
            b.before_call(wait=0)  # no verdict yet, and not waiting for one
        b.failed("503")  # the probe failed: open again, for a whole cool-down
        assert b.state == OPEN
        clock.now += 59
        with pytest.raises(CircuitOpen):
            b.before_call()
        clock.now += 1
        b.before_call()
        b.succeeded()
        assert b.state == CLOSED
        assert changes == [
            (CLOSED, OPEN),
            (OPEN, HALF_OPEN),
            (HALF_OPEN, OPEN),
            (OPEN, HALF_OPEN),
            (HALF_OPEN, CLOSED),
        ]


def test_state_survives_a_restart(tmp_path: Path) -> None:
    clock = Clock()
    with Manifest(tmp_path / "m.sqlite") as m:
        b = breaker(m, clock, [])
        for _ in range(3):
            b.failed("timeout")
    with Manifest(tmp_path / "m.sqlite") as m:
        again = breaker(m, clock, [])
        assert again.state == OPEN
        with pytest.raises(CircuitOpen):
            again.before_call()
        other = CircuitBreaker("gs://other", threshold=3, cooldown=60, store=m, clock=clock)
        assert other.state == CLOSED  # per target


def test_an_answer_from_the_service_is_not_a_failure(tmp_path: Path) -> None:
    """'Not found' (or access denied) means the service is there: the count resets."""
    clock = Clock()
    with Manifest(tmp_path / "m.sqlite") as m:
        b = breaker(m, clock, [])
        backend = BreakingBackend(MemoryBackend("breaker-test"), b)
        b.failed("503")
        b.failed("503")
        with pytest.raises(ObjectNotFound):
            backend.stat("missing")
        b.failed("503")
        assert b.state == CLOSED
        backend.put("k", io.BytesIO(b"x"), size=1, metadata={})
        assert backend.capabilities == MemoryBackend.capabilities


def test_resilience_config_is_validated() -> None:
    base = """
state_dir = "/tmp/x"
[[targets]]
url = "s3://b/p"
[[keys]]
provider = "local"
path = "/tmp/keyring"
"""
    cfg = parse(base + "[resilience]\nretry_attempts = 7\nbreaker_cooldown = 5\n")
    assert cfg.resilience.retry_attempts == 7 and cfg.resilience.breaker_cooldown == 5.0
    with pytest.raises(ConfigError, match=r"unknown key resilience\.retries"):
        parse(base + "[resilience]\nretries = 3\n")
    with pytest.raises(ConfigError, match=r"resilience\.breaker_threshold must be >= 1"):
        parse(base + "[resilience]\nbreaker_threshold = 0\n")
    with pytest.raises(ConfigError, match=r"resilience\.failover must be bool"):
        parse(base + '[resilience]\nfailover = "yes"\n')


def test_failover_needs_a_target_in_the_other_cloud() -> None:
    from shipper.pipeline.failover import fallback_targets

    text = """
state_dir = "/tmp/x"
[routing]
primary = "aws"
[resilience]
failover = true
[[targets]]
url = "s3://b/p"
{more}
[[keys]]
provider = "local"
path = "/tmp/keyring"
"""
    with pytest.raises(ConfigError, match=r"resilience\.failover = true needs a target"):
        fallback_targets(parse(text.format(more="")))
    cfg = parse(text.format(more='[[targets]]\nurl = "gs://g/p"'))
    assert [t.url for t in fallback_targets(cfg)] == ["gs://g/p"]


def test_a_v2_manifest_migrates_to_v3_with_breakers(tmp_path: Path) -> None:
    import sqlite3

    from shipper.manifest_schema import SCHEMA_VERSION

    path = tmp_path / "m.sqlite"
    with Manifest(path) as m:
        m.discover("mysql-bin.000001", 10)
    with sqlite3.connect(path) as db:  # what the v2 release left: no breakers table
        db.execute("DROP TABLE breakers")
        db.execute("PRAGMA user_version = 2")
    with Manifest(path) as m:
        assert m.get("mysql-bin.000001") is not None
        CircuitBreaker("s3://b/p", threshold=1, cooldown=60, store=m).failed("503")
    with Manifest(path) as m:
        assert CircuitBreaker("s3://b/p", threshold=1, cooldown=60, store=m).state == OPEN
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3


def test_a_pass_counts_one_failure_however_many_workers_saw_it(tmp_path: Path) -> None:
    """Once passes are marked, ``threshold`` is a number of passes: the failures of
    parallel workers in one pass are one observation of one outage."""
    clock, changes = Clock(), []  # type: ignore[var-annotated]
    with Manifest(tmp_path / "m.sqlite") as m:
        b = breaker(m, clock, changes)  # threshold 3
        for _ in range(2):
            b.begin_pass()
            for _ in range(5):  # five binlogs in flight saw the target fail
                b.failed("503", b.before_call())
        assert b.state == CLOSED
        b.begin_pass()
        b.failed("503", b.before_call())
        assert b.state == OPEN and changes == [(CLOSED, OPEN)]
        clock.now += 60
        b.begin_pass()
        probe = b.before_call()
        b.failed("503", probe)  # a failed probe counts in a pass that counted nothing yet
        assert b.state == OPEN


def test_calls_made_during_a_probe_wait_for_its_verdict(tmp_path: Path) -> None:
    """Half-open: the probe's verdict decides for the calls that arrive while it runs
    (parallel workers), instead of failing them fast and losing the pass."""
    import threading

    clock = Clock()
    with Manifest(tmp_path / "m.sqlite") as m:
        b = breaker(m, clock, [])
        for _ in range(3):
            b.failed("503")
        clock.now += 60
        for verdict in ("succeeded", "failed"):
            probe = b.before_call()
            outcome: list[str] = []

            def other(outcome: list[str] = outcome) -> None:
                try:
                    b.before_call()
                    outcome.append("let through")
                except CircuitOpen as e:
                    outcome.append(str(e))

            t = threading.Thread(target=other)
            t.start()
            t.join(0.2)
            assert t.is_alive() and not outcome  # waiting, not refused
            if verdict == "succeeded":
                b.succeeded(probe)
            else:
                b.failed("503 again", probe)
            t.join(10)
            if verdict == "succeeded":
                assert outcome == ["let through"] and b.state == CLOSED
                for _ in range(3):
                    b.failed("503")
                clock.now += 60
            else:
                assert "circuit open after" in outcome[0] and b.state == OPEN
