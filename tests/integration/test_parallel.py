"""Ordered parallel shipping against a real MariaDB: binlogs are sealed, uploaded and
verified at once, and committed strictly in sequence order."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from shipper.cli import main as cli
from shipper.manifest import Manifest
from shipper.sandbox import SandboxServer
from tests.helpers import closed_binlogs, fill_binlogs, parse, rotate, write_config
from tests.services.cloud import Moto

pytestmark = pytest.mark.mariadb


@pytest.fixture(scope="module")
def mixed(mariadb_factory) -> SandboxServer:  # type: ignore[no-untyped-def]
    """Large and small binlogs interleaved: 40 MB, then six small ones, twice."""
    s = mariadb_factory(server_id=31, max_binlog_size=256 << 20)
    for _ in range(2):
        fill_binlogs(s, 1, mb=40)
        rotate(s, 6, rows=20)
    return s


def test_commits_follow_the_sequence_while_work_overlaps(
    mixed: SandboxServer, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    write_config(state, mixed, tenant="par", extra="workers = 4")
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    names = closed_binlogs(mixed)
    assert len(names) == 14
    with Manifest(state / "manifest.sqlite") as m:
        rows = sorted(m.all(), key=lambda r: r.sequence)
        verified = {
            r.name: m.placements(r.name)[f"file://{state / 'archive'}"].verified_at for r in rows
        }
    assert [r.name for r in rows] == names
    assert all(r.state == "committed" for r in rows)
    committed = [r.committed_at for r in rows]
    assert committed == sorted(committed), "a binlog was committed before an earlier one"
    # the work really overlapped: the small binlogs after the first large one (handed
    # to the pool with it) were verified on the target before it was, yet committed
    # after it
    big = [r for r in rows if (r.size or 0) > 16 << 20]
    assert [r.name for r in big] == [names[0], names[7]]
    assert all(verified[n] < verified[names[0]] for n in names[1:4])  # type: ignore[operator]
    # and each is the server's file, byte for byte
    for name in (names[0], names[1], names[-1]):
        out = tmp_path / "fetched" / name
        assert cli(["fetch", name, "-o", str(out), "--state-dir", str(state)]) == 0
        want = hashlib.sha256((mixed.binlog_dir / name).read_bytes()).hexdigest()
        assert hashlib.sha256(out.read_bytes()).hexdigest() == want


def test_one_worker_ships_the_same_archive(mixed: SandboxServer, tmp_path: Path) -> None:
    # workers = 1 is the sequential baseline: same result, nothing overtakes
    state = tmp_path / "state"
    write_config(state, mixed, tenant="par", extra="workers = 1")
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    with Manifest(state / "manifest.sqlite") as m:
        rows = sorted(m.all(), key=lambda r: r.sequence)
        url = f"file://{state / 'archive'}"
        verified = [m.placements(r.name)[url].verified_at for r in rows]
    assert [r.state for r in rows] == ["committed"] * 14
    assert verified == sorted(verified)  # type: ignore[type-var]


def test_a_binlog_placed_while_an_earlier_one_is_held_back_waits_for_it(
    mariadb_factory,  # type: ignore[no-untyped-def]
    moto: Moto,
    tmp_path: Path,
) -> None:
    """Two workers: binlog N+1 is placed and verified on S3 while N's upload is still
    on its way; then S3 refuses N (503, retries spent) and takes the target out of the
    pass. N+1 must not be committed before N: it waits, placed, and the next pass
    commits both in order without uploading N+1 again."""
    from shipper.pipeline.ship import Shipper
    from tests.integration.test_faults import binlog_objects, config
    from tests.services.faultproxy import FaultProxy

    server = mariadb_factory(server_id=33)
    bucket = moto.bucket()
    url = f"s3://{bucket}/a"
    rotate(server, 1, rows=20)
    with FaultProxy(moto.endpoint_url, flavor="s3") as proxy:
        text = config(
            tmp_path / "state",
            server,
            s3=(url, proxy.url),
            routing='primary = "aws"',
            resilience="retry_attempts = 2\nretry_base = 0.01",
        )
        shipper = Shipper(parse("workers = 2\n" + text))
        try:
            assert shipper.run_once().ok
            first = closed_binlogs(server)
            rotate(server, 2, rows=20)
            n, n1 = closed_binlogs(server)[len(first) :]
            # every request for N waits until N+1's index is on S3, then gets 503
            proxy.fail_after(f"/{n}.", after=f"/{n1}.idx.")
            res = shipper.run_once()
            assert res.blocked == [n, n1] and not res.shipped
            rows = {r.name: r for r in shipper.manifest.all()}
            assert rows[n].state != "committed" and rows[n1].state != "committed"
            assert shipper.manifest.placements(n1)[url].state == "verified"

            proxy.clear_rules()  # S3 answers N again
            puts = sum(1 for line in proxy.log if line.startswith(f"PUT /{bucket}/"))
            res = shipper.run_once()
            assert res.ok and res.shipped == [n] and res.already == [n1]
            committed = sorted(shipper.manifest.all(), key=lambda r: r.sequence)
            assert [r.name for r in committed] == [*first, n, n1]
            at = [r.committed_at for r in committed]
            assert at == sorted(at)  # type: ignore[type-var]
            # N+1 was not uploaded again: only N and its index were put in that pass
            new_puts = [line for line in proxy.log if line.startswith(f"PUT /{bucket}/")][puts:]
            assert all(f"/{n}." in line for line in new_puts), new_puts
            versions = moto.s3.list_object_versions(Bucket=bucket).get("Versions", [])
            assert binlog_objects(v["Key"] for v in versions) == dict.fromkeys([*first, n, n1], 1)
        finally:
            shipper.close()


def test_a_put_whose_answer_was_lost_is_recognised_without_downloading_it(
    mariadb_factory,  # type: ignore[no-untyped-def]
    moto: Moto,
    tmp_path: Path,
) -> None:
    """S3 stored our PUT but the connection was reset before its answer: the retry meets
    the key taken. S3 checked that body's SHA-256 on receipt and reports it; equal to the
    envelope we sealed, the object is ours byte for byte, so it is not downloaded again
    (the usual header-and-first-chunk read-back still runs)."""
    from shipper.pipeline.ship import Shipper
    from tests.integration.test_faults import binlog_objects, config
    from tests.services.faultproxy import FaultProxy

    server = mariadb_factory(server_id=34)
    bucket = moto.bucket()
    url = f"s3://{bucket}/a"
    rotate(server, 2, rows=20)
    names = closed_binlogs(server)
    with FaultProxy(moto.endpoint_url, flavor="s3") as proxy:
        text = config(
            tmp_path / "state",
            server,
            s3=(url, proxy.url),
            routing='primary = "aws"',
            resilience="retry_attempts = 3\nretry_base = 0.01",
        )
        proxy.lose_answer(f"/{names[0]}.zst.enc")
        shipper = Shipper(parse(text))
        try:
            res = shipper.run_once()
        finally:
            shipper.close()
    assert res.ok and sorted(res.shipped + res.already) == names
    assert "reset-after" in proxy.injected  # the answer really was lost
    mine = [(m, status) for m, p, status in proxy.answers if p.endswith(f"/{names[0]}.zst.enc")]
    assert ("PUT", 412) in mine  # the retry found the key taken
    assert ("GET", 200) not in mine  # and did not download the object
    assert ("GET", 206) in mine  # the read-back of header and first chunk
    versions = moto.s3.list_object_versions(Bucket=bucket).get("Versions", [])
    assert binlog_objects(v["Key"] for v in versions) == dict.fromkeys(names, 1)


@pytest.mark.parametrize("throttled", [3, 4, 6])
def test_a_call_that_gives_up_while_the_target_answers_is_placed_again(
    mariadb_factory,  # type: ignore[no-untyped-def]
    moto: Moto,
    tmp_path: Path,
    throttled: int,
) -> None:
    """One binlog's index PUT is throttled more times than a call retries (2 attempts
    here), while S3 answers everything else: that is the call's bad luck, not S3 down.
    The binlog is placed again in the same pass (from the verification: its object is
    in), so neither it nor the binlogs after it wait for the next pass, and nothing is
    doubled. The old code took S3 out of the pass: the binlog and every later one
    stayed pending. Placements are bounded: throttled 6 times (3 placements of 2
    attempts), the target is taken out of the pass as before."""
    from shipper.cli import main as cli
    from tests.integration.test_faults import binlog_objects, config
    from tests.integration.test_metrics import event_lines
    from tests.services.faultproxy import FaultProxy

    server = mariadb_factory(server_id=35)
    bucket = moto.bucket()
    url = f"s3://{bucket}/a"
    rotate(server, 4, rows=20)
    names = closed_binlogs(server)
    events_file = tmp_path / "events.jsonl"
    cfg = tmp_path / "state" / "config.toml"
    with FaultProxy(moto.endpoint_url, flavor="s3") as proxy:
        text = config(
            tmp_path / "state",
            server,
            s3=(url, proxy.url),
            routing='primary = "aws"',
            resilience="retry_attempts = 2\nretry_base = 0.01",
        )
        cfg.write_text(text.replace("[mysql]", f'events_file = "{events_file}"\n\n[mysql]'))
        proxy.fail_next(f"/{names[1]}.idx.", times=throttled)
        code = cli(["run", "--once", "--config", str(cfg)])
    assert proxy.injected["503"] == throttled
    evs = event_lines(events_file)
    retried = [(e["binlog"], e["placement"]) for e in evs if e["event"] == "placement_retried"]
    assert retried == [(names[1], n) for n in range(2, 2 + min(2, throttled // 2))]
    down = [e["binlog"] for e in evs if e["event"] == "target_down"]
    committed = [e["binlog"] for e in evs if e["event"] == "committed"]
    if throttled < 6:
        assert code == 0 and not down
        assert committed == names
        shipped = [e for e in evs if e["event"] == "committed" and e["binlog"] == names[1]]
        assert shipped[0]["outcome"] == "shipped"  # put by this pass, not "already"
    else:
        assert code != 0 and down == [names[1]]
        assert committed == names[:1]  # the rest wait for the next pass, in order
    # the object was put once; the retried placements did not put it again
    obj = f"/{names[1]}.zst.enc"
    assert [m for m, p, _status in proxy.answers if p.endswith(obj)].count("PUT") == 1
    versions = moto.s3.list_object_versions(Bucket=bucket).get("Versions", [])
    stored = binlog_objects(v["Key"] for v in versions)
    assert all(n == 1 for n in stored.values())
    indexes = [v["Key"] for v in versions if ".idx." in v["Key"]]
    assert len(indexes) == len(set(indexes))
