"""The ordered pool: work in parallel, commits in the order the jobs were handed in."""

from __future__ import annotations

import os
import threading

import pytest

from shipper.errors import ConfigError, IntegrityError
from shipper.pipeline.parallel import (
    Done,
    Job,
    MemoryBudget,
    footprint,
    run_ordered,
)
from tests.helpers import parse

MiB = 1 << 20

BASE = """
tenant = "t"
state_dir = "/tmp/x"
[[targets]]
url = "memory://a"
[[keys]]
provider = "local"
path = "/tmp/k"
"""


def test_a_result_waits_for_every_earlier_commit() -> None:
    # job 1 is done long before job 0; the committer must not see it first
    jobs = [Job("b.000001", 1), Job("b.000002", 1), Job("b.000003", 1)]
    one_done = threading.Event()
    order: list[str] = []

    def work(job: Job) -> int:
        if job.name == "b.000001":
            assert one_done.wait(timeout=30)
        elif job.name == "b.000002":
            one_done.set()
        order.append(job.name)
        return len(job.name)

    committed: list[Done[int]] = []
    run_ordered(
        jobs, work, committed.append, workers=3, budget=MemoryBudget(1 << 40), chunk_size=MiB
    )
    assert order.index("b.000002") < order.index("b.000001")  # finished out of order
    assert [d.job.name for d in committed] == ["b.000001", "b.000002", "b.000003"]
    assert all(d.value == 8 and d.error is None for d in committed)


def test_a_job_asleep_in_a_backoff_lets_another_job_work() -> None:
    """One worker: the first job's calls fail (throttled) until the second job has run.
    Its backoff sleeps hand the worker slot over, so the second job runs meanwhile and
    the first one's retry then succeeds; holding the slot while asleep, it would use up
    its attempts waiting for a job that cannot start."""
    from shipper.errors import StorageError
    from shipper.resilience import retrying

    second_ran = threading.Event()
    calls: list[str] = []

    def throttled() -> str:
        calls.append("call")
        if not second_ran.is_set():
            raise StorageError("503 SlowDown", transient=True)
        return "stored"

    def work(job: Job) -> str:
        if job.name == "b.000001":
            return retrying(throttled, attempts=30, base=0.1, max_wait=0.1)
        second_ran.set()
        return "second"

    committed: list[Done[str]] = []
    jobs = [Job("b.000001", 1), Job("b.000002", 1)]
    run_ordered(
        jobs, work, committed.append, workers=1, budget=MemoryBudget(1 << 40), chunk_size=MiB
    )
    assert [(d.job.name, d.value, d.error) for d in committed] == [
        ("b.000001", "stored", None),
        ("b.000002", "second", None),
    ]
    assert len(calls) >= 2  # it was throttled at least once before the other job ran


def _head_retried_until(target: str, sizes: list[int]) -> list[tuple[str, str]]:
    """One worker; the first job's calls are throttled until ``target`` has run (or 12
    attempts). Returns the ("start" | "commit", name) events in order."""
    from shipper.errors import StorageError
    from shipper.resilience import retrying

    events: list[tuple[str, str]] = []
    lock = threading.Lock()
    target_ran = threading.Event()

    def throttled() -> str:
        if not target_ran.is_set():
            raise StorageError("503 SlowDown", transient=True)
        return "stored"

    def work(job: Job) -> str:
        with lock:
            events.append(("start", job.name))
        if job.name == "b.000001":
            return retrying(throttled, attempts=12, base=0.05, max_wait=0.05)
        if job.name == target:
            target_ran.set()
        return "later"

    def commit(done: Done[str]) -> None:
        with lock:
            events.append(("commit", done.job.name))

    jobs = [Job(f"b.{i:06d}", size) for i, size in enumerate(sizes, 1)]
    run_ordered(jobs, work, commit, workers=1, budget=MemoryBudget(1 << 40), chunk_size=MiB)
    return events


def test_later_small_binlogs_go_on_while_the_first_is_retried() -> None:
    """The window is deep for small binlogs: while the head of the pass waits out its
    backoffs, binlogs well past ``2 * workers`` are shipped (and wait to commit after
    it). With a window of ``2 * workers`` the sixth could not start before the first
    committed, which here it waits for: every later binlog waited on one slow call."""
    events = _head_retried_until("b.000006", [8 * MiB] * 8)
    assert events.index(("start", "b.000006")) < events.index(("commit", "b.000001"))
    assert [n for kind, n in events if kind == "commit"] == [f"b.{i:06d}" for i in range(1, 9)]


def test_large_binlogs_keep_the_window_at_two_per_worker() -> None:
    """Binlogs that add up past WINDOW_BYTES do not pile up in staging behind a slow
    one: with one worker, the third 600 MiB binlog starts only once the first commits."""
    events = _head_retried_until("b.000003", [600 * MiB] * 4)
    assert events.index(("start", "b.000003")) > events.index(("commit", "b.000001"))
    assert [n for kind, n in events if kind == "commit"] == [f"b.{i:06d}" for i in range(1, 5)]


def test_a_shipper_error_is_that_jobs_result_and_the_rest_go_on() -> None:
    def work(job: Job) -> str:
        if job.name == "b.000002":
            raise IntegrityError("bad b.000002")
        return "ok"

    committed: list[Done[str]] = []
    run_ordered(
        [Job(f"b.00000{i}", 1) for i in (1, 2, 3)],
        work,
        committed.append,
        workers=2,
        budget=MemoryBudget(1 << 40),
        chunk_size=MiB,
    )
    assert [(d.job.name, d.value, str(d.error) if d.error else None) for d in committed] == [
        ("b.000001", "ok", None),
        ("b.000002", None, "bad b.000002"),
        ("b.000003", "ok", None),
    ]


def test_a_bug_stops_the_pass_and_is_raised() -> None:
    def work(job: Job) -> str:
        raise RuntimeError(f"bug in {job.name}")

    with pytest.raises(RuntimeError, match=r"bug in b\.000001"):
        run_ordered(
            [Job(f"b.00000{i}", 1) for i in range(1, 9)],
            work,
            lambda d: None,
            workers=2,
            budget=MemoryBudget(1 << 40),
            chunk_size=MiB,
        )


def test_memory_budget_bounds_large_files_in_flight() -> None:
    # 8 large binlogs, 4 workers, room for two large jobs: never more than two at once
    big = footprint(1 << 30, MiB)
    budget = MemoryBudget(2 * big)
    running = started = 0
    most = 0
    cond = threading.Condition()

    def work(job: Job) -> None:
        nonlocal running, started, most
        with cond:
            running += 1
            started += 1
            most = max(most, running)
            cond.notify_all()
            # hold on until a second job runs beside this one: if the budget let a
            # third in, it would be counted now
            cond.wait_for(lambda: running >= 2 or started == 8, timeout=5)
            running -= 1

    run_ordered(
        [Job(f"b.{i:06d}", 1 << 30) for i in range(8)],
        work,
        lambda d: None,
        workers=4,
        budget=budget,
        chunk_size=MiB,
    )
    assert most == 2
    assert budget.peak == 2 * big
    assert budget.used == 0


def test_one_job_larger_than_the_budget_still_runs() -> None:
    budget = MemoryBudget(16 * MiB)
    done: list[str] = []
    run_ordered(
        [Job("b.000001", 1 << 30), Job("b.000002", 1 << 30)],
        lambda job: job.name,
        lambda d: done.append(d.job.name),
        workers=2,
        budget=budget,
        chunk_size=MiB,
    )
    assert done == ["b.000001", "b.000002"]
    assert budget.peak == footprint(1 << 30, MiB)  # one at a time


def test_small_files_cost_about_their_size() -> None:
    assert footprint(100_000, MiB) < footprint(1 << 30, MiB)
    assert footprint(1 << 30, MiB) == footprint(10 << 30, MiB)


def test_workers_and_memory_budget_are_validated() -> None:
    cfg = parse("workers = 3\nmemory_budget_mb = 64\n" + BASE)
    assert (cfg.workers, cfg.memory_budget) == (3, 64 * MiB)
    # one per CPU this process may use, at least 4 (network waits), at most 8
    assert parse(BASE).workers == max(4, min(8, len(os.sched_getaffinity(0))))
    for bad, key in (
        ("workers = 0", "workers"),
        ("workers = 1000", "workers"),
        ('workers = "2"', "workers"),
        ("memory_budget_mb = 1", "memory_budget_mb"),
    ):
        with pytest.raises(ConfigError, match=key):
            parse(bad + "\n" + BASE)
