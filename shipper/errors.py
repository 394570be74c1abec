"""The project's error hierarchy.

Every error a user can meet derives from :class:`ShipperError`, carries an exit
code, and says what went wrong in words that name the thing (the file, the key,
the config entry) so the operator can act on it. Edges (SDKs, drivers) re-raise
their own errors as one of these, ``from`` the cause.
"""

from __future__ import annotations

import re


class ShipperError(Exception):
    """Base of every error binlog-shipper raises on purpose.

    ``code`` is the stable name metrics and events use for it
    (``binlog_sync_failed_total{error_code=...}``): the class name in snake case,
    set for every subclass as it is defined, so renaming a class is a visible change.
    """

    exit_code = 1
    code = "shipper_error"

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:
            cls.code = re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()


class ConfigError(ShipperError):
    """The configuration file or a command-line value is invalid."""

    exit_code = 2


class IntegrityError(ShipperError):
    """Data failed authentication or a checksum: tampered, truncated or corrupt."""

    exit_code = 3


class ObjectNotFound(ShipperError):
    """The object (or local file) asked for does not exist."""

    exit_code = 4


class PreconditionFailed(ShipperError):
    """A conditional write found the key already taken."""

    exit_code = 5


class BinlogFormatError(ShipperError):
    """The bytes are not a binary log this parser can read."""

    exit_code = 6


class KeyProviderError(ShipperError):
    """A key could not be wrapped or unwrapped (missing keyring, wrong key, KMS denied)."""

    exit_code = 7


class StorageError(ShipperError):
    """A storage backend failed in a way that is not 'not found' or 'precondition'.

    ``transient`` is set by the backend that met the error: True when asking
    again may succeed (throttling, 5xx, timeouts, connection resets).
    """

    exit_code = 8

    def __init__(self, *args: object, transient: bool = False) -> None:
        super().__init__(*args)
        self.transient = transient


class PermissionDenied(StorageError):
    """The service refused the credentials or the action."""

    exit_code = 8


class StateError(ShipperError):
    """The state directory or its manifest cannot be used."""

    exit_code = 9


class DatabaseError(ShipperError):
    """The MySQL/MariaDB server could not be reached or queried."""

    exit_code = 10


class LineageConflict(ShipperError):
    """A different file already sits at the key this binlog would take."""

    exit_code = 11


class RestoreError(ShipperError):
    """A restore cannot be planned or carried out as asked."""

    exit_code = 12
