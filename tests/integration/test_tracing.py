"""Tracing with a real OpenTelemetry SDK: one span per binlog, and its trace id is the one
in the object's metadata, so whatever reads the object (the archive's functions, a
restore) can continue the trace.

The shipper depends on opentelemetry-api only; a deployment that wants spans
exported installs the SDK and sets a TracerProvider. That is what the child process
here does (the global provider can be set once per process) before it runs the CLI's
``run --once`` under a parent span of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shipper.storage.file import FileBackend
from tests.helpers import closed_binlogs, rotate, write_config

pytestmark = pytest.mark.mariadb

pytest.importorskip("opentelemetry.sdk")

CHILD = """
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

from shipper.cli import main

if sys.argv[2] == "parent":
    with trace.get_tracer("deployment").start_as_current_span("nightly"):
        code = main(["run", "--once", "--state-dir", sys.argv[1]])
else:
    code = main(["run", "--once", "--state-dir", sys.argv[1]])
spans = [
    {
        "name": s.name,
        "trace_id": trace.format_trace_id(s.context.trace_id),
        "span_id": trace.format_span_id(s.context.span_id),
        "parent": trace.format_span_id(s.parent.span_id) if s.parent else None,
        "attributes": dict(s.attributes or {}),
        "status": s.status.status_code.name,
    }
    for s in exporter.get_finished_spans()
]
print(json.dumps({"code": code, "spans": spans}))
"""


def run(state: Path, parent: str) -> list[dict[str, object]]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(state), parent],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["code"] == 0, done.stderr
    spans: list[dict[str, object]] = out["spans"]
    return spans


def test_each_binlog_is_a_span_whose_trace_id_is_in_its_metadata(
    mariadb_factory,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    server = mariadb_factory(server_id=38)
    state = tmp_path / "state"
    write_config(state, server, tenant="traced", extra="workers = 2")
    archive = FileBackend(state / "archive")

    def metadata_trace(name: str) -> str:
        (obj,) = [o for o in archive.list() if o.key.endswith(f"/{name}.zst.enc")]
        return archive.stat(obj.key).metadata["trace_id"]

    # under a deployment's own span: each binlog's span is its child, in its trace
    rotate(server, 3, rows=20)
    spans = run(state, "parent")
    (parent,) = [s for s in spans if s["name"] == "nightly"]
    binlogs = {s["attributes"]["binlog.name"]: s for s in spans if s["name"] == "ship_binlog"}  # type: ignore[index]
    names = closed_binlogs(server)
    assert sorted(binlogs) == names  # one span per binlog, from the worker threads too
    for name, span in binlogs.items():
        # the worker ran in a copy of the caller's context
        assert span["parent"] == parent["span_id"] and span["trace_id"] == parent["trace_id"]
        assert span["attributes"]["binlog_shipper.tenant"] == "traced"  # type: ignore[index]
        assert span["status"] == "UNSET"
        assert metadata_trace(name) == span["trace_id"]

    # with no span around it, each binlog starts a trace of its own
    rotate(server, 3, rows=20)
    spans = run(state, "none")
    new = closed_binlogs(server)[len(names) :]
    binlogs = {s["attributes"]["binlog.name"]: s for s in spans if s["name"] == "ship_binlog"}  # type: ignore[index]
    assert sorted(binlogs) == new
    assert all(s["parent"] is None for s in binlogs.values())
    assert len({s["trace_id"] for s in binlogs.values()}) == len(new)
    for name, span in binlogs.items():
        assert metadata_trace(name) == span["trace_id"]
