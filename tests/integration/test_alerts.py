"""PagerDuty Events API v2 alerts, received by a real HTTP server in the test.

Thresholds are crossed by real runs (a target down grows the queue) and by the
metrics and circuit hook the pipeline calls; delivery is retried, deduplicated,
resolved, and never holds up shipping.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from shipper.alerts import Alerter
from shipper.cli import main as cli
from shipper.config import AlertConfig
from shipper.pipeline.ship import Shipper
from shipper.sandbox import SandboxServer
from shipper.telemetry import Metrics
from tests.helpers import closed_binlogs, load, rotate, write_config
from tests.services.cloud import Moto, free_port
from tests.services.pagerduty import Receiver


def routing_key(tmp_path: Path) -> Path:
    path = tmp_path / "pd-routing-key"
    path.write_text("R0UT1NGKEY0123456789abcdefabcdef\n")
    path.chmod(0o600)
    return path


def alerts_section(url: str, key: Path, **thresholds: object) -> str:
    lines = ["[alerts]", f'url = "{url}"', f'routing_key_file = "{key}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in thresholds.items()]
    return "\n" + "\n".join(lines) + "\n"


@pytest.mark.mariadb
def test_queue_depth_alert_triggers_once_while_a_target_is_down_and_resolves(
    mariadb_factory,  # type: ignore[no-untyped-def]
    moto: Moto,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    server: SandboxServer = mariadb_factory(server_id=71)
    rotate(server, 2)
    state = tmp_path / "state"
    bucket = "bs-alerts-missing"
    url = f"s3://{bucket}/archive"
    write_config(state, server, tenant="shop")
    text = (state / "config.toml").read_text()
    text = text.replace(f'url = "file://{state / "archive"}"', f'url = "{url}"')
    text = text.replace('primary = "local"', 'primary = "aws"')
    text = text.replace(
        f'url = "{url}"',
        f'url = "{url}"\nendpoint_url = "{moto.endpoint_url}"\nregion = "us-east-1"',
    )
    text += alerts_section(receiver.url, routing_key(tmp_path), queue_depth=2)
    (state / "config.toml").write_text(text)

    assert cli(["run", "--once", "--state-dir", str(state)]) == 8
    assert cli(["run", "--once", "--state-dir", str(state)]) == 8  # still down: no new page
    assert len(receiver.events) == 1
    trigger = receiver.events[0]
    assert trigger["event_action"] == "trigger"
    assert trigger["routing_key"] == "R0UT1NGKEY0123456789abcdefabcdef"
    assert trigger["dedup_key"].startswith("binlog-shipper/shop/")
    assert trigger["dedup_key"].endswith("/queue_depth")
    payload = trigger["payload"]
    assert payload["severity"] == "error" and payload["source"] and payload["group"] == "shop"
    assert f"{len(closed_binlogs(server))} closed binlog(s) not archived" in payload["summary"]
    assert payload["custom_details"]["binlog_queue_depth"] == len(closed_binlogs(server))

    moto.s3.create_bucket(Bucket=bucket)
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0
    assert cli(["run", "--once", "--state-dir", str(state)]) == 0  # still fine: no new event
    assert receiver.actions() == [
        ("trigger", trigger["dedup_key"]),
        ("resolve", trigger["dedup_key"]),
    ]
    assert receiver.events[1]["routing_key"] == trigger["routing_key"]


def test_circuit_open_alerts_once_and_resolves_when_it_closes(
    receiver: Receiver, tmp_path: Path
) -> None:
    metrics = Metrics("ledger")
    alerter = Alerter(
        AlertConfig(routing_key_file=str(routing_key(tmp_path)), url=receiver.url),
        "ledger",
        metrics,
        tmp_path / "alerts.json",
    )
    metrics.on_circuit_change(alerter.circuit)
    target = "gs://ledger-archive/p"
    metrics.circuit_changed(target, "open", "503 from storage.googleapis.com")
    metrics.circuit_changed(target, "half-open")  # a probe is not a recovery
    metrics.circuit_changed(target, "open", "still 503")  # still the same incident
    text = generate_latest(metrics.registry).decode()
    assert f'binlog_circuit_state{{target="{target}",tenant="ledger"}} 2.0' in text
    metrics.circuit_changed(target, "closed")
    alerter.close()
    key = f"binlog-shipper/ledger/{alerter.source}/circuit/{target}"
    assert receiver.actions() == [("trigger", key), ("resolve", key)]
    assert "503 from storage.googleapis.com" in receiver.events[0]["payload"]["summary"]
    text = generate_latest(metrics.registry).decode()
    assert f'binlog_circuit_state{{target="{target}",tenant="ledger"}} 0.0' in text


def test_archive_lag_and_expiry_alerts_and_a_restart_remembers_what_fires(
    receiver: Receiver, tmp_path: Path
) -> None:
    cfg = AlertConfig(
        routing_key_file=str(routing_key(tmp_path)),
        url=receiver.url,
        archive_lag_seconds=600,
        expiry_seconds=3600,
    )
    state = tmp_path / "alerts.json"
    metrics = Metrics("shop")
    alerter = Alerter(cfg, "shop", metrics, state)
    alerter.evaluate(metrics)  # nothing committed yet, nothing pending: no alert
    metrics.committed(time.time() - 1800, None)  # the newest archived event is 30 min old
    metrics.set_expiry_deadline(time.time() + 600)  # purge of an unarchived binlog in 10 min
    alerter.evaluate(metrics)
    alerter.evaluate(metrics)
    alerter.close()
    assert [a for a, _ in receiver.actions()] == ["trigger", "trigger"]
    assert {k.rsplit("/", 1)[1] for _, k in receiver.actions()} == {"archive_lag", "expiry"}
    by_class = {e["payload"]["class"]: e["payload"] for e in receiver.events}
    assert by_class["archive_lag"]["severity"] == "critical"
    assert by_class["archive_lag"]["custom_details"]["binlog_archive_lag_seconds"] >= 1790

    # a new process: what fires is remembered (no second page), and it resolves
    metrics = Metrics("shop")
    alerter = Alerter(cfg, "shop", metrics, state)
    metrics.committed(time.time() - 1800, None)
    metrics.set_expiry_deadline(time.time() + 600)
    alerter.evaluate(metrics)
    metrics.committed(time.time(), None)
    metrics.set_expiry_deadline(None)
    alerter.evaluate(metrics)
    alerter.close()
    assert [a for a, _ in receiver.actions()] == ["trigger", "trigger", "resolve", "resolve"]


def test_delivery_is_retried_on_503(receiver: Receiver, tmp_path: Path) -> None:
    receiver.fail_next = 2
    metrics = Metrics("shop")
    alerter = Alerter(
        AlertConfig(routing_key_file=str(routing_key(tmp_path)), url=receiver.url, attempts=4),
        "shop",
        metrics,
        tmp_path / "alerts.json",
    )
    alerter.circuit("s3://b/p", "open", "SlowDown")
    alerter.close(timeout=60)
    assert [a for a, _ in receiver.actions()] == ["trigger"]
    assert receiver.fail_next == 0


def test_an_unreachable_receiver_costs_a_counted_drop_not_an_error(tmp_path: Path) -> None:
    metrics = Metrics("shop")
    alerter = Alerter(
        AlertConfig(
            routing_key_file=str(routing_key(tmp_path)),
            url=f"http://127.0.0.1:{free_port()}/v2/enqueue",
            attempts=2,
        ),
        "shop",
        metrics,
        tmp_path / "alerts.json",
    )
    alerter.circuit("s3://b/p", "open", "SlowDown")
    alerter.close(timeout=60)
    text = generate_latest(metrics.registry).decode()
    assert 'binlog_shipper_alerts_dropped_total{reason="undeliverable"} 1.0' in text


@pytest.mark.mariadb
def test_a_hanging_receiver_does_not_hold_up_shipping(
    mariadb_factory,  # type: ignore[no-untyped-def]
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    server: SandboxServer = mariadb_factory(server_id=72)
    rotate(server, 2)
    state = tmp_path / "state"
    path = write_config(state, server)
    path.write_text(
        path.read_text()
        + alerts_section(receiver.url, routing_key(tmp_path), archive_lag_seconds=0.001)
    )
    receiver.hang.set()
    shipper = Shipper(load(path))
    try:
        assert shipper.run_once().shipped == closed_binlogs(server)
        assert receiver.waiting.wait(30)  # the trigger's request is in flight, held there
        rotate(server, 2)
        res = shipper.run_once()
        # the next binlogs are committed while that request is still held
        assert res.shipped == closed_binlogs(server)[-2:]
        assert not receiver.events
    finally:
        receiver.release.set()
        shipper.close()
    assert [a for a, _ in receiver.actions()] == ["trigger"]
