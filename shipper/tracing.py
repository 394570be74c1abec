"""One OpenTelemetry span per binlog, and the trace id it carries.

The shipper depends on opentelemetry-api only. When the process has an SDK
configured (a TracerProvider set by the deployment), each binlog's span is a
real one and its trace id is what goes into the object metadata
(``trace_id``), the structured events and the catalog, so the archive's
functions, which read the metadata, continue the same trace. Without an SDK
the API's tracer is a no-op whose spans carry no ids; then the shipper makes
its own W3C ids and puts that span context in place as the current span, so
whatever runs inside it (logs, a child span of an instrumented library) sees
the same trace id the metadata gets.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace

_tracer = trace.get_tracer("binlog-shipper")


@contextmanager
def binlog_span(name: str, tenant: str) -> Iterator[str]:
    """Run the shipping of binlog ``name`` in its span; yields its trace id (32 hex)."""
    attributes = {"binlog.name": name, "binlog_shipper.tenant": tenant}
    with _tracer.start_as_current_span("ship_binlog", attributes=attributes) as span:
        ctx = span.get_span_context()
        if ctx.is_valid:
            yield trace.format_trace_id(ctx.trace_id)
            return
        own = trace.SpanContext(
            trace_id=_nonzero(16),
            span_id=_nonzero(8),
            is_remote=False,
            trace_flags=trace.TraceFlags(trace.TraceFlags.DEFAULT),
        )
        with trace.use_span(trace.NonRecordingSpan(own)):
            yield trace.format_trace_id(own.trace_id)


def current_trace_id() -> str | None:
    """The trace id of the current span, if it has one."""
    ctx = trace.get_current_span().get_span_context()
    return trace.format_trace_id(ctx.trace_id) if ctx.is_valid else None


def record_error(exc: BaseException) -> None:
    """Mark the current span failed with ``exc`` (a no-op without an SDK)."""
    span = trace.get_current_span()
    span.record_exception(exc)
    span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))


def _nonzero(nbytes: int) -> int:
    # all-zero ids are the API's "invalid"; the chance is 2**-64 at worst, but be exact
    while True:
        value = int.from_bytes(os.urandom(nbytes), "big")
        if value:
            return value
