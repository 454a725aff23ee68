"""OpenTelemetry: the span tree of a run, GenAI attributes, errors, no secrets, context from a
served request, and nothing imported or recorded when instrumentation is off."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import accord
import accord.serve
from accord.errors import ProviderUnavailableError
from accord.testing import FunctionBackend, ScriptedBackend

sys.path.insert(0, str(Path(__file__).resolve().parent / "serve"))
from _server import Recorder, chain, serving  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    accord.instrument(provider, capture_content=False)
    try:
        yield exporter
    finally:
        accord.uninstrument()


def _by_name(found: tuple[ReadableSpan, ...]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for s in found:
        out.setdefault(s.name, []).append(s)
    return out


def _everything(found: tuple[ReadableSpan, ...]) -> str:
    parts = []
    for s in found:
        parts.append(s.name)
        parts.append(json.dumps(dict(s.attributes or {}), default=str))
        parts.append(str(s.status.description))
        for e in s.events:
            parts.append(json.dumps(dict(e.attributes or {}), default=str))
    return "\n".join(parts)


async def test_telemetry_run_activation_and_call_spans_form_a_tree(
    spans: InMemorySpanExporter,
) -> None:
    rec = Recorder()
    result = await chain().run("the secret task text", rec.backend)
    found = spans.get_finished_spans()
    named = _by_name(found)
    run = named["accord.run trio"][0]
    calls = named["chat fake-1"]
    assert len(found) == 7 and len(calls) == 3
    assert run.parent is None
    assert run.attributes["accord.run_id"] == result.run_id
    assert run.attributes["accord.status"] == "completed"
    assert run.attributes["gen_ai.usage.input_tokens"] == result.usage.prompt_tokens
    for node in "abc":
        agent = named[f"invoke_agent {node}"][0]
        assert agent.parent is not None and agent.parent.span_id == run.context.span_id
        assert agent.attributes["gen_ai.operation.name"] == "invoke_agent"
        assert agent.attributes["accord.node"] == node and agent.attributes["accord.round"] == 0
        call = next(c for c in calls if c.attributes["accord.node"] == node)
        assert call.parent is not None and call.parent.span_id == agent.context.span_id
        assert call.attributes["gen_ai.operation.name"] == "chat"
        assert call.attributes["gen_ai.request.model"] == "fake-1"
        assert call.attributes["gen_ai.provider.name"] == "function"
        usage = result.usage_by_agent[node]
        assert call.attributes["gen_ai.usage.input_tokens"] == usage.prompt_tokens
        assert call.attributes["gen_ai.usage.output_tokens"] == usage.completion_tokens
        assert call.attributes["gen_ai.response.finish_reasons"] == ("stop",)
        assert call.start_time >= agent.start_time and call.end_time <= agent.end_time  # type: ignore[operator]
    assert {s.context.trace_id for s in found} == {run.context.trace_id}
    assert "the secret task text" not in _everything(found)  # contents only on opt-in
    assert "think step by step" not in _everything(found)


async def test_telemetry_captures_message_contents_only_when_asked() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    accord.instrument(provider, capture_content=True)
    try:
        await chain().run("the task text", Recorder().backend)
    finally:
        accord.uninstrument()
    named = _by_name(exporter.get_finished_spans())
    call = next(c for c in named["chat fake-1"] if c.attributes["accord.node"] == "c")
    assert "the task text" in str(named["accord.run trio"][0].attributes["accord.task"])
    assert "b says: think step by step" in str(call.attributes["gen_ai.input.messages"])
    output = json.loads(str(call.attributes["gen_ai.output.messages"]))
    assert output[0]["parts"][0]["content"] == "the answer is 42"


async def test_telemetry_records_a_failed_call_on_its_span_its_activation_and_the_run(
    spans: InMemorySpanExporter,
) -> None:
    secret = "sk-live-abcdefghijklmnop123456"
    boom = ProviderUnavailableError(
        f"upstream down (authorization: Bearer {secret})", status_code=503, provider="x"
    )
    backend = ScriptedBackend({"a": ["fine"], "b": [boom]})
    with pytest.raises(ProviderUnavailableError):
        await chain().run("task", backend)
    found = spans.get_finished_spans()
    named = _by_name(found)
    call_b = next(c for c in named["chat scripted"] if c.attributes["accord.node"] == "b")
    agent_b = named["invoke_agent b"][0]
    run = named["accord.run trio"][0]
    for span in (call_b, agent_b, run):
        assert span.status.status_code == StatusCode.ERROR, span.name
        assert span.attributes["error.type"] == "ProviderUnavailableError"
        assert [e.name for e in span.events] == ["exception"]
    assert named["invoke_agent a"][0].status.status_code == StatusCode.UNSET
    assert run.attributes["accord.status"] == "failed"
    assert "c" not in {s.attributes.get("accord.node") for s in found}
    assert secret not in _everything(found)  # the key is redacted from messages and statuses


async def test_telemetry_marks_a_cancelled_run_and_its_call(spans: InMemorySpanExporter) -> None:
    import asyncio

    rec = Recorder(delay=5)
    task = asyncio.create_task(chain().run("task", rec.backend))
    await asyncio.sleep(0.3)
    assert rec.started
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    named = _by_name(spans.get_finished_spans())
    assert named["accord.run trio"][0].attributes["accord.status"] == "cancelled"
    assert named["chat fake-1"][0].attributes["accord.cancelled"] is True
    assert named["invoke_agent a"][0].attributes["accord.cancelled"] is True


def test_telemetry_trace_context_flows_from_a_served_request_into_the_run(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent_id = "00f067aa0ba902b7"
    api = accord.serve.app([chain()], backend=Recorder().backend, store=tmp_path / "r.db")
    with serving(api) as url:
        reply = httpx.post(
            url + "/chat/completions",
            json={"model": "trio", "messages": [{"role": "user", "content": "x"}]},
            headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
        )
    assert reply.status_code == 200
    found = spans.get_finished_spans()
    run = _by_name(found)["accord.run trio"][0]
    assert run.parent is not None and f"{run.parent.span_id:016x}" == parent_id
    assert {f"{s.context.trace_id:032x}" for s in found} == {trace_id}
    assert run.attributes["accord.run_id"] == reply.headers["x-accord-run-id"]


def test_telemetry_off_imports_no_opentelemetry_and_adds_no_sink() -> None:
    code = (
        "import asyncio, sys, accord\n"
        "from accord.testing import FunctionBackend\n"
        "g = accord.Graph('g'); g.add(accord.Agent('a'))\n"
        "seen = []\n"
        "r = asyncio.run(g.run('t', FunctionBackend(lambda r: 'ok')))\n"
        "print(r.text, any(m.startswith('opentelemetry') for m in sys.modules), accord._otel.TRACER)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "ACCORD_DURABILITY": "off"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == ["ok", "False", "None"]


async def test_telemetry_uninstrument_stops_making_spans(spans: InMemorySpanExporter) -> None:
    accord.uninstrument()
    await chain().run("task", FunctionBackend(lambda r: "x"))
    assert spans.get_finished_spans() == ()


def test_telemetry_a_served_run_that_fails_with_a_usage_error_still_ends_its_spans(
    spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    api = accord.serve.app([chain()], backend=None, store=tmp_path / "r.db")  # no model for "a"
    with serving(api) as url:
        reply = httpx.post(
            url + "/chat/completions",
            json={"model": "trio", "messages": [{"role": "user", "content": "x"}]},
        )
    assert reply.status_code == 500 and "ConfigError" in reply.json()["error"]["message"]
    named = _by_name(spans.get_finished_spans())
    run = named["accord.run trio"][0]
    assert run.status.status_code == StatusCode.ERROR
    assert run.attributes["error.type"] == "ConfigError"
    assert named["invoke_agent a"][0].status.status_code == StatusCode.ERROR


async def test_telemetry_a_subgraphs_activations_nest_under_its_activation(
    spans: InMemorySpanExporter,
) -> None:
    from accord.graphs import Subgraph

    outer = accord.Graph("outer")
    outer.add(accord.Agent("first"), Subgraph(chain("inner"), name="sub"))
    outer.connect("first", "sub")
    await outer.run("task", Recorder().backend)
    named = _by_name(spans.get_finished_spans())
    # A subgraph runs inside its parent run: no run span of its own, its nodes under "sub".
    assert "accord.run inner" not in named
    sub = named["invoke_agent sub"][0]
    inner = [s for name, found in named.items() if name.startswith("invoke_agent sub/") for s in found]
    assert inner and all(s.parent is not None for s in inner)
    assert {s.parent.span_id for s in inner if s.parent} == {sub.context.span_id}
    assert {s.context.trace_id for s in inner} == {named["accord.run outer"][0].context.trace_id}
