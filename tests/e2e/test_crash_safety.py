"""Crash safety: SIGKILL the shipper at random moments, restart it, lose nothing.

The shipper runs as a real subprocess (``python -m shipper run --once``) against
a real MariaDB and is killed with SIGKILL at a random moment while binlogs are
pending, at least 20 times, restarting each time. Afterwards every closed
binlog is archived exactly once, no object was ever replaced, the manifest
agrees with the archive, and every fetch is byte-identical to the server's file.

It runs with one worker and with four (several binlogs sealed, uploaded and
verified at once when the kill lands); after every kill the committed rows are
a prefix of the sequence: never N+1 committed while N is not.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shipper.manifest import Manifest
from shipper.sandbox import SandboxServer
from shipper.storage.file import FileBackend
from tests.helpers import closed_binlogs, fill_binlogs, write_config

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]

MIN_KILLS = 20


def _objects(archive: Path) -> dict[str, tuple[str, str]]:
    """key -> (version, sha256 of stored bytes) for every object in the archive."""
    if not archive.exists():
        return {}
    return {i.key: (i.version, i.sha256 or "") for i in FileBackend(archive).list()}


def _pending(state: Path) -> int:
    if not (state / "manifest.sqlite").exists():
        return 1
    with Manifest(state / "manifest.sqlite") as m:
        return len(m.pending())


@pytest.mark.parametrize("workers", [1, 4])
def test_sigkill_at_random_moments_loses_nothing(
    mariadb_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    workers: int,
) -> None:
    server: SandboxServer = mariadb_factory(server_id=21 + workers, max_binlog_size=64 << 20)
    fill_binlogs(server, 12)  # a dozen closed binlogs of ~4 MB
    state = tmp_path / "state"
    write_config(state, server, tenant="crash", extra=f"workers = {workers}")
    archive = state / "archive"
    rng = random.Random(int(os.environ.get("CRASH_SEED", "20261124")))
    cmd = [sys.executable, "-m", "shipper", "run", "--once", "--state-dir", str(state)]
    seen: dict[str, tuple[str, str]] = {}
    kills = 0
    most_ahead = 0  # the most binlogs placed but not yet committed when a kill landed
    batches = 1
    runs = 0
    # With several workers, keep killing until one kill has landed while binlogs were
    # placed and waiting for their turn to commit (the case the workers add); where a
    # kill lands is random, so this is a condition to reach, not one to hope for.
    while kills < MIN_KILLS or (workers > 1 and most_ahead < 2):
        runs += 1
        assert runs < 200, f"only {kills} kills landed in {runs} runs (most ahead {most_ahead})"
        if _pending(state) == 0 and set(closed_binlogs(server)) <= _committed(state):
            fill_binlogs(server, 12)  # everything is shipped: give it another dozen
            batches += 1
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.05, 0.7))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        # No object, once written, is ever replaced or changed.
        now = _objects(archive)
        for key, ver in seen.items():
            assert now.get(key) == ver, f"{key} was overwritten or removed"
        seen = now
        most_ahead = max(most_ahead, _assert_committed_in_order(state))
    if workers > 1:
        # some kill landed while several binlogs were uploaded and waiting for their turn
        assert most_ahead >= 2, most_ahead
    # Finally let it finish.
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr

    names = closed_binlogs(server)
    assert len(names) >= 12
    binlog_keys = [
        k for k in _objects(archive) if k.endswith(".zst.enc") and not k.endswith(".idx.zst.enc")
    ]
    # every closed binlog exactly once, and no lineage copies of our own files
    assert sorted(k.rsplit("/", 1)[-1].removesuffix(".zst.enc") for k in binlog_keys) == names
    assert not any(".lineage-" in k for k in binlog_keys)
    with Manifest(state / "manifest.sqlite") as m:
        rows = {r.name: r for r in m.all()}
    assert {n: r.state for n, r in rows.items()} == dict.fromkeys(names, "committed")
    assert sorted(r.object_key or "" for r in rows.values()) == sorted(binlog_keys)
    for name in names:
        out = tmp_path / "fetched" / name
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "shipper",
                "fetch",
                name,
                "-o",
                str(out),
                "--state-dir",
                str(state),
            ],
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0, res.stderr
        want = hashlib.sha256((server.binlog_dir / name).read_bytes()).hexdigest()
        assert hashlib.sha256(out.read_bytes()).hexdigest() == want
        assert rows[name].sha256 == want
    print(
        f"{kills} SIGKILLs in {runs} runs over {batches} batch(es), {len(names)} binlogs "
        f"archived once each ({workers} worker(s); up to {most_ahead} placed ahead of a kill)"
    )


def _assert_committed_in_order(state: Path) -> int:
    """The committed rows are a prefix of the sequence (nothing here fails or is
    flagged); returns how many rows after it already have a verified placement."""
    if not (state / "manifest.sqlite").exists():
        return 0
    with Manifest(state / "manifest.sqlite") as m:
        rows = sorted(m.all(), key=lambda r: r.sequence)
        placed = {
            n
            for (n, _), p in m.all_placements().items()
            if any(x.state == "verified" for x in p.values())
        }
    states = [r.state for r in rows]
    done = states.count("committed")
    assert states[:done] == ["committed"] * done, f"committed out of order: {states}"
    return sum(1 for r in rows[done:] if r.name in placed)


def _committed(state: Path) -> set[str]:
    if not (state / "manifest.sqlite").exists():
        return set()
    with Manifest(state / "manifest.sqlite") as m:
        return {r.name for r in m.all() if r.state == "committed"}
