"""The transaction index: compact serialisation, lookups, and what it says on real files."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipper.binlog import TransactionIndex, read_events, scan_file
from shipper.errors import BinlogFormatError

from .corpus import BINLOGS, FORMAT_ERROR, NAMES

_rows = st.lists(
    st.tuples(
        st.integers(0, 1 << 40),
        st.integers(1, 1 << 30),
        st.integers(0, 1 << 52),
        st.one_of(st.none(), st.sampled_from(["3e11fa47-71ca-11e1-9e33-c80aa9429562", "u:tag"])),
        st.integers(1, (1 << 63) - 1),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(_rows, st.sampled_from([None, "mysql"]))
def test_round_trip(rows: list[tuple[int, int, int, str | None, int]], flavor: str | None) -> None:
    idx = TransactionIndex(flavor)
    for start, length, commit, src, seq in rows:
        idx.append(start, start + length, commit, src, seq)
    back = TransactionIndex.from_bytes(idx.to_bytes())
    assert back == idx and list(back) == list(idx)


@pytest.mark.parametrize("name", [n for n in NAMES if n not in FORMAT_ERROR])
def test_real_index_round_trips_and_is_small(name: str) -> None:
    info = scan_file(BINLOGS / name)
    data = info.index.to_bytes()
    assert TransactionIndex.from_bytes(data) == info.index
    if info.transactions > 100:
        assert len(data) / info.transactions < 12  # bytes per transaction


def test_mariadb_index_content() -> None:
    info = scan_file(BINLOGS / "mdbpoc__domain_id_0_mariadb-repl-bin.000010")
    assert info.transactions == 10
    gtids = [t.gtid for t in info.index]
    assert gtids == [f"0-10-{n}" for n in range(292197, 292207)]
    assert info.index.find_gtid("0-10-292200") == info.index[3]
    t = info.index[0]
    assert info.index.containing(t.start) == t and info.index.containing(t.end) != t


def test_mysql8_commit_times_are_microseconds() -> None:
    info = scan_file(BINLOGS / "rmc__binlog_transaction_with_GTID_TAG.000001")
    (t,) = list(info.index)
    assert t.gtid == "55778904-0299-11f1-b1b8-4ef0c4956feb:mytag:3"
    assert (t.start, t.end) == (245, 541)
    assert t.commit_us == 1770368687207196  # immediate_commit_timestamp of the GTID event
    assert info.index.last_committed_by(t.commit_us) == t
    assert info.index.last_committed_by(t.commit_us - 1) is None


def test_pre_gtid_commit_times_are_header_seconds() -> None:
    info = scan_file(BINLOGS / "rmc__binlog_transaction.000001")
    assert info.gtid_flavor is None and info.transactions > 0
    assert all(t.gtid is None and t.commit_us % 1_000_000 == 0 for t in info.index)


@pytest.mark.parametrize("blob", [b"", b"BSTI", b"XXXX\x01\x00\x00\x00", b"BSTI\x01\x01\x05\x00"])
def test_bad_bytes(blob: bytes) -> None:
    with pytest.raises(BinlogFormatError):
        TransactionIndex.from_bytes(blob)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.integers(0, 79), st.integers(1, 255))
def test_damaged_index_bytes_raise_format_error_only(junk: bytes, at: int, x: int) -> None:
    idx = TransactionIndex("mariadb")
    idx.append(4, 100, 10**15, "0-1", 5)
    idx.append(100, 300, 10**15 + 7, "0-1", 6)
    for blob in (b"BSTI\x01" + junk, bytearray(idx.to_bytes())):
        if isinstance(blob, bytearray) and at < len(blob):
            blob[at] ^= x
        with contextlib.suppress(BinlogFormatError):
            TransactionIndex.from_bytes(bytes(blob))


def test_mysql8_immediate_commit_timestamps() -> None:
    info, events = read_events(BINLOGS / "apecloud__mysql-bin.000057")
    gtid_ts = {e.pos: e.timestamp for e in events if e.type_code == 33}
    assert info.transactions == 3
    for t in info.index:
        assert t.gtid is not None and t.gtid.startswith("76f3e7be-6720-11ed-9cad-0242ac110002:")
        # microseconds, within a few seconds of the GTID event's header time
        assert abs(t.commit_us / 1e6 - gtid_ts[t.start]) < 5
    assert any(t.commit_us % 1_000_000 for t in info.index)


@pytest.mark.parametrize("name", ["apecloud__mysql-bin.000057", "mbcj__mysql-bin.compressed"])
def test_compressed_transaction_payloads_hold_whole_transactions(name: str) -> None:
    from shipper.binlog.bodies import decode_transaction_payload

    data = (BINLOGS / name).read_bytes()
    info, events = read_events(BINLOGS / name)
    payloads = [e for e in events if e.type_code == 40]
    assert payloads
    for e in payloads:
        p = decode_transaction_payload(data, e.pos + 19, e.end_pos - 4)
        assert p.compression == 0
        assert sum(size for _, size in p.inner) == p.uncompressed_size
        types = [t for t, _ in p.inner]
        assert types[0] == 2 and types[-1] == 16  # BEGIN ... XID
        # the index ends the transaction at the payload event
        assert info.index.containing(e.pos) is not None
        assert info.index.containing(e.pos).end == e.end_pos  # type: ignore[union-attr]
