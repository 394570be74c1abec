"""Key providers and the config registry.

``make_provider({"provider": "local", "path": "/var/lib/binlog-shipper/keyring"})``
``make_provider({"provider": "aws-kms", "key_id": "arn:aws:kms:...", "region": "eu-west-1"})``
``make_provider({"provider": "gcp-kms", "key_name": "projects/.../cryptoKeys/..."})``

SDKs are imported lazily: only the provider in use needs its SDK installed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from shipper.errors import ConfigError
from shipper.keys.base import KeyProvider

__all__ = ["KeyProvider", "make_provider", "register_provider"]

_Factory = Callable[[Mapping[str, Any]], KeyProvider]
_PROVIDERS: dict[str, _Factory] = {}


def register_provider(kind: str, factory: _Factory) -> None:
    _PROVIDERS[kind] = factory


def _local(cfg: Mapping[str, Any]) -> KeyProvider:
    from shipper.keys.local import LocalKeyring  # type: ignore[import-not-found,unused-ignore]

    return LocalKeyring.from_config(cfg)  # type: ignore[no-any-return,unused-ignore]


def _aws(cfg: Mapping[str, Any]) -> KeyProvider:
    from shipper.keys.aws_kms import AwsKmsProvider  # type: ignore[import-not-found,unused-ignore]

    return AwsKmsProvider.from_config(cfg)  # type: ignore[no-any-return,unused-ignore]


def _gcp(cfg: Mapping[str, Any]) -> KeyProvider:
    from shipper.keys.gcp_kms import GcpKmsProvider  # type: ignore[import-not-found,unused-ignore]

    return GcpKmsProvider.from_config(cfg)  # type: ignore[no-any-return,unused-ignore]


register_provider("local", _local)
register_provider("aws-kms", _aws)
register_provider("gcp-kms", _gcp)


def make_provider(cfg: Mapping[str, Any]) -> KeyProvider:
    kind = cfg.get("provider")
    try:
        factory = _PROVIDERS[str(kind)]
    except KeyError:
        known = ", ".join(sorted(_PROVIDERS))
        raise ConfigError(
            f"keys.provider = {kind!r} is not a key provider (known: {known})"
        ) from None
    return factory(cfg)
