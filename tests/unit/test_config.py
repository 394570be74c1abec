"""Config validation: good files load; every bad value is an error naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipper.errors import ConfigError
from tests.helpers import parse

GOOD = """
tenant = "acme"
state_dir = "/var/lib/bs"
[mysql]
host = "db1"
port = 3307
[[targets]]
url = "s3://bucket/prefix"
region = "eu-west-1"
[[targets]]
url = "gs://bucket2/p"
[[keys]]
provider = "local"
path = "/var/lib/bs/keyring"
"""


def test_good_config_loads_with_defaults() -> None:
    cfg = parse(GOOD)
    assert cfg.tenant == "acme"
    assert cfg.mysql.port == 3307
    assert cfg.compression_level == 3
    assert cfg.primary == "aws"  # the first target's cloud
    assert [t.cloud for t in cfg.targets] == ["aws", "gcp"]
    assert cfg.targets[0].options == {"region": "eu-west-1"}
    assert [t.url for t in cfg.write_targets()] == ["s3://bucket/prefix"]


def test_direct_dual_writes_every_target() -> None:
    cfg = parse(GOOD + '\n[routing]\nprimary = "gcp"\ndirect_dual = true\n')
    assert cfg.primary == "gcp"
    assert len(cfg.write_targets()) == 2


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (GOOD.replace("port = 3307", 'port = "abc"'), "mysql.port"),
        (GOOD.replace("port = 3307", "port = true"), "mysql.port"),
        (GOOD.replace("port = 3307", "port = 70000"), "mysql.port"),
        (GOOD.replace('host = "db1"', 'hots = "db1"'), "mysql.hots"),
        (GOOD.replace('tenant = "acme"', 'tenant = "a/b"'), "tenant"),
        (GOOD.replace('tenant = "acme"', "compression_level = 40"), "compression_level"),
        (GOOD.replace('url = "s3://bucket/prefix"', 'url = "ftp://x"'), "targets[0].url"),
        (GOOD.replace('url = "s3://bucket/prefix"', "url = 5"), "targets[0].url"),
        (GOOD.replace('provider = "local"', 'provider = "vault"'), "keys[0].provider"),
        (GOOD.replace('state_dir = "/var/lib/bs"', ""), "state_dir"),
        (GOOD + '\n[routing]\nprimary = "azure"\n', "routing.primary"),
        ('verify = "sometimes"\n' + GOOD, "verify"),
    ],
)
def test_bad_value_names_the_key(text: str, names: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(text)
    assert names in str(e.value)


def test_no_targets_is_an_error() -> None:
    text = 'state_dir = "/x"\n[[keys]]\nprovider = "local"\npath = "/k"\n'
    with pytest.raises(ConfigError, match="targets"):
        parse(text)


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    from shipper.config import load

    with pytest.raises(ConfigError, match="not found"):
        load(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("tenant = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)
