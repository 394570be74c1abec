"""Structured events: one JSON line for every failure and change of state.

The pipeline calls :func:`emit`; the line goes through the ``shipper.events``
logger, so a library user gets ordinary log records, and ``run`` (the only
place that configures logging) attaches :class:`JsonLines` to write them, one
JSON object per line, to stderr or ``events_file``. Every line has the same
fields, null when they do not apply, so a log pipeline can index them without
guessing::

    {"at": "2026-12-01T16:41:07.250Z", "event": "target_down", "level": "error",
     "tenant": "shop", "error_code": "storage_error", "retry_count": 0,
     "provider": "s3", "target": "s3://bucket/p", "binlog": "mysql-bin.000042",
     "binlog_index": 42, "trace_id": "4bf9...", "message": "..."}

Event names and fields are listed in docs/operations.md.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import Any, TextIO

from shipper import tracing
from shipper.errors import ShipperError, StateError

LOGGER = "shipper.events"
FIELDS = (
    "error_code",
    "retry_count",
    "provider",
    "target",
    "binlog",
    "binlog_index",
    "tenant",
    "trace_id",
)

_log = logging.getLogger(LOGGER)


def error_code(exc: BaseException) -> str:
    """The stable code of an error (:attr:`ShipperError.code`); anything else is a bug
    and is named by its class."""
    if isinstance(exc, ShipperError):
        return exc.code
    return "unexpected_" + type(exc).__name__.lower()


def provider_of(url: str) -> str:
    """The storage provider of a target URL: s3, gcs, file, memory."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    return {"gs": "gcs"}.get(scheme, scheme)


def binlog_index(name: str | None) -> int | None:
    """The sequence number in a binlog's name (mysql-bin.000042 -> 42)."""
    if not name:
        return None
    suffix = name.rpartition(".")[2]
    return int(suffix) if suffix.isdigit() else None


def emit(
    event: str,
    message: str,
    *,
    tenant: str,
    level: int = logging.INFO,
    error: BaseException | None = None,
    code: str | None = None,
    target: str | None = None,
    binlog: str | None = None,
    retry_count: int = 0,
    trace_id: str | None = None,
    **extra: Any,
) -> None:
    """Emit one event. ``error`` sets ``error_code`` (or pass ``code``);
    ``target`` sets ``provider``; ``binlog`` sets ``binlog_index``; ``trace_id`` is the
    current span's unless given (so a failure inside a binlog's span carries its id)."""
    code = code or (error_code(error) if error is not None else None)
    doc: dict[str, Any] = {
        "event": event,
        "level": logging.getLevelName(level).lower(),
        "tenant": tenant,
        "error_code": code,
        "retry_count": retry_count,
        "provider": provider_of(target) if target else None,
        "target": target,
        "binlog": binlog,
        "binlog_index": binlog_index(binlog),
        "trace_id": trace_id or tracing.current_trace_id(),
        "message": message,
        **extra,
    }
    _log.log(level, "%s: %s", event, message, extra={"event_doc": doc})


class JsonLines(logging.Handler):
    """Writes each event as one JSON line, to a stream or appended to a file."""

    def __init__(self, path: Path | None = None) -> None:
        super().__init__(logging.DEBUG)
        self.path = path
        self._file: TextIO | None = None
        if path is not None:
            try:
                self._file = path.open("a", encoding="utf-8")
            except OSError as e:
                raise StateError(f"events_file {path} cannot be opened: {e.strerror}") from e

    def emit(self, record: logging.LogRecord) -> None:
        doc = getattr(record, "event_doc", None)
        if not isinstance(doc, dict):
            return
        at = dt.datetime.fromtimestamp(record.created, dt.UTC)
        line = json.dumps({"at": at.isoformat(timespec="milliseconds"), **doc}, default=str)
        # stderr is looked up per line, so a redirected sys.stderr (tests, daemons) is used
        stream = self._file or sys.stderr
        with self.lock or _NullLock():
            stream.write(line + "\n")
            stream.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        super().close()


class _NullLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def install(path: Path | None = None) -> JsonLines:
    """Send events as JSON lines (to ``path``, else stderr) instead of as text logs."""
    handler = JsonLines(path)
    _log.addHandler(handler)
    _log.setLevel(logging.DEBUG)
    _log.propagate = False
    return handler


def uninstall(handler: JsonLines) -> None:
    _log.removeHandler(handler)
    handler.close()
    if not _log.handlers:
        _log.propagate = True
