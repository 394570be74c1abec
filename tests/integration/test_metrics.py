"""Metrics, structured events and trace ids, from real runs against MariaDB.

/metrics is scraped over HTTP from a `run` process in watch mode; the textfile,
events and trace ids come from `run --once` / the Shipper.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from opentelemetry import trace
from prometheus_client.parser import text_string_to_metric_families

from shipper.cli import main as cli
from shipper.manifest import Manifest
from shipper.pipeline.ship import Shipper
from shipper.sandbox import SandboxServer
from shipper.storage.file import FileBackend
from shipper.telemetry import TEXTFILE_MARK
from tests.helpers import closed_binlogs, load, rotate, write_config
from tests.services.cloud import Moto, free_port

pytestmark = pytest.mark.mariadb

SYNC_NAMES = {
    "binlog_sync_discovered_total": {"tenant"},
    "binlog_sync_uploaded_total": {"tenant", "target"},
    "binlog_sync_latency_seconds_bucket": {"tenant", "le"},
    "binlog_sync_latency_seconds_count": {"tenant"},
    "binlog_queue_depth": {"tenant"},
    "binlog_archive_lag_seconds": {"tenant"},
    "binlog_circuit_state": {"tenant", "target"},
    "binlog_oldest_unarchived_expiry_seconds": {"tenant"},
}
EVENT_FIELDS = {
    "at",
    "event",
    "level",
    "message",
    "error_code",
    "retry_count",
    "provider",
    "target",
    "binlog",
    "binlog_index",
    "tenant",
    "trace_id",
}


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def one(text: str, name: str, **labels: str) -> float:
    found = [v for n, lab, v in samples(text) if n == name and labels.items() <= lab.items()]
    assert len(found) == 1, (name, labels, found)
    return found[0]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def event_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_metrics_endpoint_serves_every_name_with_right_values(
    mariadb_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    server: SandboxServer = mariadb_factory(server_id=61)
    rotate(server, 3)
    names = closed_binlogs(server)
    state = tmp_path / "state"
    port = free_port()
    cfg = write_config(
        state,
        server,
        tenant="shop",
        extra=f'metrics_address = "127.0.0.1:{port}"\npoll_interval = 0.2',
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipper", "run", "-c", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        text = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                text = scrape(port)
                scraped_at = time.time()
            except OSError:
                text = ""
            if text and one(text, "binlog_sync_latency_seconds_count") == len(names):
                break
            time.sleep(0.2)
        assert text, "metrics never served"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    target = f"file://{state / 'archive'}"
    got = samples(text)
    for name, labels in SYNC_NAMES.items():
        assert any(n == name and set(lab) == labels for n, lab, _ in got), (name, labels)
    assert all(lab.get("tenant") == "shop" for n, lab, _ in got if n.startswith("binlog_sync"))
    assert one(text, "binlog_sync_discovered_total", tenant="shop") == len(names)
    assert one(text, "binlog_sync_uploaded_total", tenant="shop", target=target) == len(names)
    assert one(text, "binlog_sync_latency_seconds_count", tenant="shop") == len(names)
    assert one(text, "binlog_queue_depth", tenant="shop") == 0
    assert one(text, "binlog_circuit_state", tenant="shop", target=target) == 0
    lag = one(text, "binlog_archive_lag_seconds", tenant="shop")
    assert math.isfinite(lag) and lag >= 0
    # nothing waits to be archived, so nothing is at risk of the server's purge
    assert one(text, "binlog_oldest_unarchived_expiry_seconds", tenant="shop") == math.inf
    # served (HELP/TYPE) with no series: nothing failed; its labels are checked where
    # something does (test_a_target_down_is_one_json_event_...)
    assert "# TYPE binlog_sync_failed_total counter" in text
    assert not [lab for n, lab, _ in got if n == "binlog_sync_failed_total"]
    # the binlog_shipper_* names are kept
    assert one(text, "binlog_shipper_binlogs_shipped_total") == len(names)
    for name in names:
        assert f"shipped  {name}" in out
    with Manifest(state / "manifest.sqlite") as m:
        newest = max(r.last_ts or 0 for r in m.all())
    # now (at the scrape) minus the last event of the newest committed binlog
    assert abs(lag - (scraped_at - newest)) < 2


def test_textfile_is_written_atomically_and_a_foreign_file_is_left_alone(
    mariadb_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server: SandboxServer = mariadb_factory(server_id=62)
    rotate(server, 2)
    state = tmp_path / "state"
    prom = tmp_path / "textfile" / "binlog_shipper.prom"
    prom.parent.mkdir()
    write_config(state, server, extra=f'metrics_textfile = "{prom}"')
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    text = prom.read_text()
    assert text.startswith(TEXTFILE_MARK)
    assert one(text, "binlog_sync_uploaded_total") == len(closed_binlogs(server))
    assert sorted(os.listdir(prom.parent)) == ["binlog_shipper.prom"]  # no temp file left
    rotate(server, 1)
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    assert one(prom.read_text(), "binlog_sync_uploaded_total") == 1  # this process's count

    foreign = tmp_path / "textfile" / "someone_elses.prom"
    foreign.write_text("node_custom_metric 1\n")
    text = (state / "config.toml").read_text().replace(str(prom), str(foreign))
    (state / "config.toml").write_text(text)
    capsys.readouterr()
    assert cli(["run", "--once", "--state-dir", str(state)]) == 9
    err = capsys.readouterr().err
    assert f"metrics_textfile {foreign} exists and was not written by binlog-shipper" in err
    assert foreign.read_text() == "node_custom_metric 1\n"


def test_a_target_down_is_one_json_event_with_every_field_and_counted_by_error_code(
    mariadb_factory,  # type: ignore[no-untyped-def]
    moto: Moto,
    tmp_path: Path,
) -> None:
    server: SandboxServer = mariadb_factory(server_id=63)
    rotate(server, 2)
    state = tmp_path / "state"
    url = "s3://bs-metrics-missing/archive"
    prom = tmp_path / "m.prom"
    events_file = tmp_path / "events.jsonl"
    write_config(
        state,
        server,
        tenant="ledger",
        extra=f'metrics_textfile = "{prom}"\nevents_file = "{events_file}"',
    )
    text = (state / "config.toml").read_text()
    text = text.replace(f'url = "file://{state / "archive"}"', f'url = "{url}"')
    text = text.replace('primary = "local"', 'primary = "aws"')
    text = text.replace(
        f'url = "{url}"',
        f'url = "{url}"\nendpoint_url = "{moto.endpoint_url}"\nregion = "us-east-1"',
    )
    (state / "config.toml").write_text(text)
    assert cli(["run", "--once", "--state-dir", str(state)]) == 8
    evs = event_lines(events_file)
    assert all(set(e) >= EVENT_FIELDS for e in evs), evs
    down = [e for e in evs if e["event"] == "target_down"]
    assert len(down) == 1, evs
    # with parallel workers, whichever binlog's attempt met the failure first names it
    first = down[0]["binlog"]
    assert first in closed_binlogs(server)
    assert down[0]["error_code"] == "object_not_found"
    assert down[0]["provider"] == "s3" and down[0]["target"] == url
    assert down[0]["tenant"] == "ledger" and down[0]["level"] == "error"
    assert down[0]["binlog"] == first and down[0]["binlog_index"] == int(first.rsplit(".")[1])
    assert down[0]["retry_count"] == 0
    assert isinstance(down[0]["trace_id"], str) and len(down[0]["trace_id"]) == 32
    failed = [lab for n, lab, _ in samples(prom.read_text()) if n == "binlog_sync_failed_total"]
    assert failed == [{"tenant": "ledger", "target": url, "error_code": "object_not_found"}]
    assert one(prom.read_text(), "binlog_sync_failed_total", error_code="object_not_found") == 1
    assert one(prom.read_text(), "binlog_queue_depth") == len(closed_binlogs(server))

    # one event per pass and target; the binlog's failed attempts so far are counted
    assert cli(["run", "--once", "--state-dir", str(state)]) == 8
    down = [e for e in event_lines(events_file) if e["event"] == "target_down"]
    assert [e["retry_count"] for e in down] == [0, 1]
    moto.s3.create_bucket(Bucket="bs-metrics-missing")
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    committed = [e for e in event_lines(events_file) if e["event"] == "committed"]
    assert [e["binlog"] for e in committed] == closed_binlogs(server)
    assert all(e["retry_count"] == 2 and e["error_code"] is None for e in committed)


def test_each_binlog_has_its_own_trace_and_the_metadata_carries_it(
    mariadb_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    server: SandboxServer = mariadb_factory(server_id=64)
    rotate(server, 2)
    state = tmp_path / "state"
    events_file = tmp_path / "events.jsonl"
    write_config(state, server, extra=f'events_file = "{events_file}"')
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    archive = FileBackend(state / "archive")
    with Manifest(state / "manifest.sqlite") as m:
        meta = {r.name: archive.stat(r.object_key).metadata for r in m.all()}  # type: ignore[arg-type]
    ids = {name: md["trace_id"] for name, md in meta.items()}
    assert len(set(ids.values())) == len(ids) == len(closed_binlogs(server))
    assert all(len(t) == 32 and int(t, 16) != 0 for t in ids.values())
    committed = {
        e["binlog"]: e["trace_id"] for e in event_lines(events_file) if e["event"] == "committed"
    }
    assert committed == ids  # the event and the object name the same trace

    # a trace continued from a caller: the binlog spans are its children, same trace id
    rotate(server, 1)
    parent = trace.SpanContext(
        trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
        span_id=0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
    )
    shipper = Shipper(load(state / "config.toml"))
    try:
        with trace.use_span(trace.NonRecordingSpan(parent)):
            res = shipper.run_once()
        assert len(res.shipped) == 1
        row = shipper.manifest.get(res.shipped[0])
        assert row is not None and row.object_key
        assert archive.stat(row.object_key).metadata["trace_id"] == trace.format_trace_id(
            parent.trace_id
        )
    finally:
        shipper.close()


def test_flagged_and_gap_binlogs_are_events_with_their_codes(
    mariadb_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    server: SandboxServer = mariadb_factory(server_id=65)
    rotate(server, 2)
    victim = server.binlog_dir / closed_binlogs(server)[1]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside an event body: its CRC32 no longer matches
    victim.write_bytes(bytes(data))
    state = tmp_path / "state"
    events_file = tmp_path / "events.jsonl"
    write_config(state, server, tenant="acme", extra=f'events_file = "{events_file}"')
    assert cli(["run", "--once", "--state-dir", str(state)]) == 1
    rotate(server, 3)
    purged = closed_binlogs(server)[-3:-1]
    server.purge_binary_logs_to(closed_binlogs(server)[-1])
    assert cli(["run", "--once", "--state-dir", str(state)]) == 1
    evs = event_lines(events_file)
    assert all(set(e) >= EVENT_FIELDS for e in evs)
    flagged = [e for e in evs if e["event"] == "flagged"]
    assert [(e["binlog"], e["error_code"], e["level"]) for e in flagged] == [
        (victim.name, "crc_mismatch", "error")
    ]
    assert flagged[0]["trace_id"] and flagged[0]["tenant"] == "acme"
    gaps = [(e["binlog"], e["binlog_index"], e["error_code"]) for e in evs if e["event"] == "gap"]
    assert gaps == [(n, int(n.rsplit(".")[1]), "gap") for n in purged]
