"""The error every GTID parser raises: one class for both server flavours."""

from __future__ import annotations

from shipper.errors import ConfigError


class GtidSetFormatError(ConfigError, ValueError):
    """A GTID or GTID set in text form could not be parsed."""
