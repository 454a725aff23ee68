"""ACCORD_OTEL=1 exports spans with the real OTLP/HTTP exporter to a receiver on 127.0.0.1."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """
import asyncio, accord
from accord.testing import FunctionBackend
g = accord.Graph("otlp")
g.add(accord.Agent("a"), accord.Agent("b"))
g.connect("a", "b")
result = asyncio.run(g.run("secret task", FunctionBackend(lambda r: "ok")))
print(result.run_id)
"""


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[Any]]]:
    got: list[Any] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["content-length"]))
            if self.headers.get("content-encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            got.append((self.path, dict(self.headers), request))
            reply = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()


def _value(v: Any) -> Any:
    return getattr(v, v.WhichOneof("value"))


def test_telemetry_otlp_exporter_sends_the_runs_spans_to_a_receiver(
    receiver: tuple[str, list[Any]],
) -> None:
    url, got = receiver
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "ACCORD_DURABILITY": "off",
        "ACCORD_OTEL": "1",
        "OTEL_EXPORTER_OTLP_ENDPOINT": url,
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip()
    spans = []
    for path, _, request in got:
        assert path == "/v1/traces"
        for rs in request.resource_spans:
            service = {a.key: _value(a.value) for a in rs.resource.attributes}["service.name"]
            assert service == "accord"
            for ss in rs.scope_spans:
                spans.extend(ss.spans)
    names = sorted(s.name for s in spans)
    assert names == [
        "accord.run otlp",
        "chat function",
        "chat function",
        "invoke_agent a",
        "invoke_agent b",
    ]
    run = next(s for s in spans if s.name == "accord.run otlp")
    assert {a.key: _value(a.value) for a in run.attributes}["accord.run_id"] == run_id
    call = next(s for s in spans if s.name == "chat function")
    attrs = {a.key: _value(a.value) for a in call.attributes}
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.usage.output_tokens"] == 1
    assert b"secret task" not in b"".join(r.SerializeToString() for _, _, r in got)
