"""The telemetry settings: metrics_address (and the deprecated metrics_port),
the textfile, events_file, [alerts]; and the error codes metrics and events use."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipper import errors
from shipper.errors import ConfigError
from tests.helpers import parse

BASE = """
tenant = "acme"
state_dir = "/var/lib/bs"
{top}
[[targets]]
url = "file:///var/lib/bs/archive"
[[keys]]
provider = "local"
path = "/var/lib/bs/keyring"
{tables}
"""


def cfg_text(top: str = "", tables: str = "") -> str:
    return BASE.format(top=top, tables=tables)


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ('metrics_address = "0.0.0.0:9108"', "0.0.0.0:9108"),
        ('metrics_address = ":9108"', ":9108"),
        ("metrics_port = 9200", "127.0.0.1:9200"),  # folded; no longer every interface
        ("", ""),
    ],
)
def test_metrics_address_and_the_deprecated_metrics_port(value: str, address: str) -> None:
    assert parse(cfg_text(value)).metrics_address == address


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ('metrics_address = "127.0.0.1:99999"', "metrics_address must be host:port"),
        ('metrics_address = "localhost"', "metrics_address must be host:port"),
        ('metrics_address = ":9108"\nmetrics_port = 9108', "not both"),
    ],
)
def test_bad_metrics_settings_name_the_key(value: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse(cfg_text(value))


def test_alerts_section(tmp_path: Path) -> None:
    key = tmp_path / "pd.key"
    key.write_text("abc123\n")
    cfg = parse(
        cfg_text(
            tables=f'[alerts]\nrouting_key_file = "{key}"\nqueue_depth = 5\n'
            "archive_lag_seconds = 900\n"
        )
    )
    assert cfg.alerts is not None
    assert cfg.alerts.url == "https://events.pagerduty.com/v2/enqueue"
    assert (cfg.alerts.queue_depth, cfg.alerts.archive_lag_seconds) == (5, 900.0)
    assert cfg.alerts.expiry_seconds == 0 and cfg.alerts.circuit_open
    assert cfg.alerts.routing_key() == "abc123"
    assert parse(cfg_text()).alerts is None


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ("[alerts]\nqueue_depth = 5", "alerts.routing_key_file is required"),
        ('[alerts]\nrouting_key_file = "/k"\nqueue_dept = 5', "unknown key alerts.queue_dept"),
        ('[alerts]\nrouting_key_file = "/k"\nurl = "ftp://x"', "alerts.url must be an http"),
        ('[alerts]\nrouting_key_file = "/k"\nexpiry_seconds = -1', "alerts.expiry_seconds"),
        ('[alerts]\nrouting_key_file = "/k"\nattempts = 0', "alerts.attempts must be at least 1"),
        ('[alerts]\nrouting_key_file = "/k"\narchive_lag_seconds = nan', "finite number"),
    ],
)
def test_bad_alerts_settings_name_the_key(table: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse(cfg_text(tables=table))


def test_a_missing_routing_key_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    cfg = parse(cfg_text(tables=f'[alerts]\nrouting_key_file = "{tmp_path}/nope"'))
    assert cfg.alerts is not None
    with pytest.raises(ConfigError, match=f"alerts.routing_key_file '{tmp_path}/nope'"):
        cfg.alerts.routing_key()


def test_every_error_class_has_a_stable_snake_case_code() -> None:
    assert errors.ShipperError.code == "shipper_error"
    assert errors.StorageError.code == "storage_error"
    assert errors.PermissionDenied.code == "permission_denied"
    assert errors.ObjectNotFound("x").code == "object_not_found"

    class CircuitOpen(errors.StorageError):
        pass

    assert CircuitOpen.code == "circuit_open"
    codes = [
        c.code for c in vars(errors).values() if isinstance(c, type) and issubclass(c, Exception)
    ]
    assert len(codes) == len(set(codes))
