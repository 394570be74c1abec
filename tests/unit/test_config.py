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


def _top(line: str) -> str:
    return line + "\n" + GOOD


@pytest.mark.parametrize(
    ("text", "names"),
    [
        # non-finite and out-of-range numbers: nan would busy-loop the watcher
        (_top("poll_interval = nan"), "poll_interval must be a finite number"),
        (_top("poll_interval = inf"), "poll_interval must be a finite number"),
        (_top("poll_interval = -inf"), "poll_interval must be a finite number"),
        (_top("poll_interval = -1"), "poll_interval must be at least 0.1"),
        (_top("poll_interval = 0"), "poll_interval must be at least 0.1"),
        (_top("poll_interval = 0.0"), "poll_interval must be at least 0.1"),
        (_top("poll_interval = 1e9"), "poll_interval must be at least 0.1 and at most 86400"),
        (_top('poll_interval = "10"'), "poll_interval must be int or float"),
        (_top("purge_warning_seconds = -5"), "purge_warning_seconds must be at least 0"),
        (_top("purge_warning_seconds = nan"), "purge_warning_seconds must be int"),
        (_top("purge_warning_seconds = 1.5"), "purge_warning_seconds must be int"),
        (_top("metrics_port = 65536"), "metrics_port must be at least 0 and at most 65535"),
        (_top("metrics_port = -1"), "metrics_port"),
        (_top("metrics_port = inf"), "metrics_port must be int"),
        (_top("compression_level = 0"), "compression_level must be at least 1 and at most 22"),
        (_top("compression_level = nan"), "compression_level must be int"),
        (_top("chunk_size = 1024"), "chunk_size must be at least 4096"),
        (_top("chunk_size = 1e6"), "chunk_size must be int"),
        (GOOD.replace("port = 3307", "port = 3307\nconnect_timeout = 0"), "mysql.connect_timeout"),
        (GOOD.replace("port = 3307", "port = 3307\nconnect_timeout = -3"), "mysql.connect_timeout"),
        (
            GOOD.replace("port = 3307", "port = 3307\nconnect_timeout = nan"),
            "mysql.connect_timeout",
        ),
        (GOOD.replace("port = 3307", "port = 0"), "mysql.port must be at least 1"),
        # unknown or mistyped keys inside [[targets]], per scheme
        (GOOD.replace('region = "eu-west-1"', 'regoin = "eu-west-1"'), "targets[0].regoin"),
        (GOOD.replace('region = "eu-west-1"', "part_size = -1"), "targets[0].part_size"),
        (GOOD.replace('region = "eu-west-1"', 'part_size = "8M"'), "targets[0].part_size"),
        (GOOD.replace('region = "eu-west-1"', "region = 5"), "targets[0].region"),
        (GOOD.replace('region = "eu-west-1"', 'client = "x"'), "targets[0].client"),
        (
            GOOD.replace('url = "gs://bucket2/p"', 'url = "gs://b/p"\nregion = "x"'),
            "targets[1].region",
        ),
        (
            GOOD.replace('url = "gs://bucket2/p"', 'url = "gs://b/p"\nproject = ""'),
            "targets[1].project",
        ),
        (
            GOOD.replace('url = "gs://bucket2/p"', 'url = "gs://b/p"\nsdk_retry_seconds = nan'),
            "targets[1].sdk_retry_seconds must be a finite number of seconds >= 0",
        ),
        (
            GOOD.replace('url = "gs://bucket2/p"', 'url = "gs://b/p"\nsdk_retry_seconds = -1'),
            "targets[1].sdk_retry_seconds",
        ),
        (
            GOOD.replace('url = "gs://bucket2/p"', 'url = "gs://b/p"\nendpoint_url = "gcs:4443"'),
            "targets[1].endpoint_url must be an http:// or https:// URL, got 'gcs:4443'",
        ),
        (
            GOOD.replace('url = "gs://bucket2/p"', 'url = "gs://b/p"\ncredentials_file = ""'),
            "targets[1].credentials_file must be a non-empty string",
        ),
        (
            GOOD.replace('region = "eu-west-1"', 'credentials_file = "/k.json"'),
            "targets[0].credentials_file",
        ),
        (
            GOOD.replace(
                'url = "s3://bucket/prefix"\nregion = "eu-west-1"',
                'url = "file:///a"\nregion = "x"',
            ),
            "targets[0].region",
        ),
        # unknown or missing keys inside [[keys]], per provider
        (GOOD.replace('path = "/var/lib/bs/keyring"', 'pth = "/k"'), "keys[0].pth"),
        (
            GOOD.replace('path = "/var/lib/bs/keyring"', 'path = "/k"\nkey_id = "x"'),
            "keys[0].key_id",
        ),
        (GOOD.replace('path = "/var/lib/bs/keyring"', ""), "keys[0].path is required"),
        (
            GOOD.replace(
                'provider = "local"\npath = "/var/lib/bs/keyring"',
                'provider = "aws-kms"\nkey_name = "k"',
            ),
            "keys[0].key_name",
        ),
        (
            GOOD.replace(
                'provider = "local"\npath = "/var/lib/bs/keyring"',
                'provider = "aws-kms"\nregion = "r"',
            ),
            "keys[0].key_id is required",
        ),
        (
            GOOD.replace(
                'provider = "local"\npath = "/var/lib/bs/keyring"',
                'provider = "gcp-kms"\nkey_id = "k"',
            ),
            "keys[0].key_id",
        ),
        # a NUL can be written in TOML (\u0000) but in no path or name
        (GOOD.replace('state_dir = "/var/lib/bs"', 'state_dir = "/var/\\u0000lib"'), "state_dir"),
        (GOOD.replace('host = "db1"', 'host = "db\\u00001"'), "mysql.host"),
        (GOOD.replace('path = "/var/lib/bs/keyring"', 'path = "/k\\u0000"'), "keys[0].path"),
        # the tenant is a path segment of every key
        (GOOD.replace('tenant = "acme"', 'tenant = ".."'), "tenant"),
        (GOOD.replace('tenant = "acme"', 'tenant = "."'), "tenant"),
        (GOOD.replace('tenant = "acme"', 'tenant = ""'), "tenant"),
        (GOOD.replace('tenant = "acme"', 'tenant = ".hidden"'), "tenant"),
        (GOOD.replace('tenant = "acme"', 'tenant = "-x"'), "tenant"),
        (GOOD.replace('tenant = "acme"', 'tenant = "a b"'), "tenant"),
        (GOOD.replace('tenant = "acme"', 'tenant = "café"'), "tenant"),
        (GOOD.replace('tenant = "acme"', f'tenant = "{"a" * 64}"'), "tenant"),
    ],
)
def test_bad_number_option_or_tenant_names_the_key(text: str, names: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(text)
    assert names in str(e.value)


def test_tenant_error_states_the_rule() -> None:
    with pytest.raises(ConfigError) as e:
        parse(GOOD.replace('tenant = "acme"', 'tenant = ".."'))
    assert "never '.' or '..'" in str(e.value) and "63" in str(e.value)


@pytest.mark.parametrize("tenant", ["a", "shop-eu_1", "a.b", "A" * 63, "0"])
def test_safe_tenants_load(tenant: str) -> None:
    assert parse(GOOD.replace('tenant = "acme"', f'tenant = "{tenant}"')).tenant == tenant


def test_every_documented_option_loads() -> None:
    text = GOOD.replace(
        'region = "eu-west-1"',
        'region = "eu-west-1"\nendpoint_url = "http://localhost:5000"\n'
        "multipart_threshold = 16777216\npart_size = 8388608\nmax_concurrency = 8\n"
        'sse_kms_key_id = "alias/x"\nobject_lock_mode = "GOVERNANCE"\nobject_lock_days = 30',
    ).replace(
        'url = "gs://bucket2/p"',
        'url = "gs://bucket2/p"\nproject = "p"\nchunk_size = 262144\nresumable_threshold = 1024\n'
        'sdk_retry_seconds = 0\nendpoint_url = "https://storage.example:8443"\n'
        'credentials_file = "/etc/binlog-shipper/gcs-key.json"',
    )
    text += (
        '[[keys]]\nprovider = "aws-kms"\nkey_id = "alias/k"\nregion = "eu-west-1"\n'
        'endpoint_url = "http://localhost:5000"\n'
        '[[keys]]\nprovider = "gcp-kms"\n'
        'key_name = "projects/p/locations/l/keyRings/r/cryptoKeys/k"\n'
    )
    text = "poll_interval = 0.5\npurge_warning_seconds = 0\nmetrics_port = 9102\n" + text
    cfg = parse(text)
    assert cfg.poll_interval == 0.5 and cfg.metrics_port == 9102
    assert cfg.targets[0].options["object_lock_days"] == 30
    assert cfg.targets[1].options["project"] == "p"
    assert cfg.targets[1].options["endpoint_url"] == "https://storage.example:8443"
    assert [k["provider"] for k in cfg.keys] == ["local", "aws-kms", "gcp-kms"]


@pytest.mark.parametrize(
    ("url", "cloud"),
    [("s3://bucket/prefix", "aws"), ("gs://bucket/prefix", "gcp"), ("file:///srv/a", "local")],
)
def test_init_with_a_cloud_archive_writes_a_config_that_loads(
    tmp_path: Path, url: str, cloud: str
) -> None:
    from shipper.cli import main as cli
    from shipper.config import load

    state = tmp_path / "state"
    assert cli(["init", "--state-dir", str(state), "--archive", url, "--tenant", "shop"]) == 0
    cfg = load(state / "config.toml")
    assert [t.url for t in cfg.targets] == [url]
    assert cfg.primary == cloud
    assert [t.url for t in cfg.write_targets()] == [url]


def test_init_refuses_an_unsafe_tenant_and_writes_nothing(tmp_path: Path) -> None:
    from shipper.cli import main as cli

    state = tmp_path / "state"
    assert cli(["init", "--state-dir", str(state), "--tenant", ".."]) == 2
    assert not (state / "config.toml").exists()
    assert not state.exists()


def test_load_names_the_file(tmp_path: Path) -> None:
    from shipper.config import load

    path = tmp_path / "c.toml"
    path.write_text("poll_interval = nan\n" + GOOD)
    with pytest.raises(ConfigError) as e:
        load(path)
    assert str(e.value).startswith(f"config file {path}: poll_interval")


@pytest.mark.parametrize(("scheme", "module"), [("s3", "s3"), ("gs", "gcs")])
def test_target_options_are_what_the_backend_accepts(scheme: str, module: str) -> None:
    # config.TARGET_OPTIONS mirrors each backend's from_url: a drift would let a typo
    # through to the backend, or refuse an option the backend takes
    import ast

    from shipper.config import TARGET_OPTIONS

    source = Path(__file__).parents[2] / "shipper" / "storage" / f"{module}.py"
    tree = ast.parse(source.read_text())
    from_url = next(
        n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "from_url"
    )
    known = next(
        ast.literal_eval(n.value)
        for n in ast.walk(from_url)
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "known"
    )
    assert set(TARGET_OPTIONS[scheme]) == known - {"client"}  # client: for tests, not TOML
