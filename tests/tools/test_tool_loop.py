"""The tool loop on ScriptedBackend: calls, parallel calls, corrections, failures, limits."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from pydantic import BaseModel

import accord
from accord.backends.base import Completion, Request, ToolCall
from accord.errors import ToolLoopError
from accord.testing import FunctionBackend, ScriptedBackend, tool_call
from accord.tools import Tool

pytestmark = pytest.mark.usefixtures("no_real_backends")


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first number.
        b: the second
            number, on two lines.
    """
    return a + b


def _graph(agent: accord.Agent) -> accord.Graph:
    return accord.Graph("tools").add(agent)


def _tool_turns(request: Request) -> list[tuple[str | None, str]]:
    return [(m.name, m.content) for m in request.messages if m.role == "tool"]


async def test_agent_tool_call_result_goes_back_to_the_model_and_answer_is_the_output() -> None:
    backend = ScriptedBackend({"calc": [tool_call("add", a=2, b=3), "The sum is 5."]})
    agent = accord.Agent("calc", tools=[add])

    result = await _graph(agent).run("2+3?", backend=backend)

    assert result.output is not None and result.output.text == "The sum is 5."
    first, second = backend.requests
    assert [t.name for t in first.tools] == ["add"]
    assert first.tools[0].parameters["properties"]["b"]["description"] == (
        "the second number, on two lines."
    )
    assert _tool_turns(second) == [("add", "5")]
    assistant = [m for m in second.messages if m.role == "assistant"][-1]
    assert assistant.tool_calls[0].name == "add"
    assert assistant.tool_calls[0].id == second.messages[-1].tool_call_id


async def test_agent_parallel_tool_calls_run_concurrently() -> None:
    async def slow(label: str) -> str:
        """Wait a little and echo the label."""
        await asyncio.sleep(0.3)
        return label.upper()

    calls = [tool_call("slow", label=x) for x in "abc"]
    backend = ScriptedBackend({"a": [calls, "done"]})
    agent = accord.Agent("a", tools=[slow])

    started = time.perf_counter()
    await _graph(agent).run("go", backend=backend)
    elapsed = time.perf_counter() - started

    assert elapsed < 0.75  # three 0.3 s calls, run together
    assert [c for _, c in _tool_turns(backend.requests[1])] == ["A", "B", "C"]


async def test_agent_invalid_arguments_go_back_as_an_error_the_model_corrects() -> None:
    ran: list[tuple[int, int]] = []

    def mul(a: int, b: int) -> int:
        """Multiply."""
        ran.append((a, b))
        return a * b

    bad = ToolCall(id="", name="mul", arguments='{"a": "two", "b": 3}')
    backend = ScriptedBackend({"a": [bad, tool_call("mul", a=2, b=3), "6"]})

    result = await _graph(accord.Agent("a", tools=[mul])).run("2*3", backend=backend)

    assert result.output is not None and result.output.text == "6"
    error = _tool_turns(backend.requests[1])[0][1]
    assert "invalid arguments" in error and "a:" in error
    assert ran == [(2, 3)]


async def test_agent_tool_exception_and_unknown_tool_become_error_results() -> None:
    def boom() -> str:
        """Fail."""
        raise RuntimeError("disk on fire")

    backend = ScriptedBackend({"a": [[tool_call("boom"), tool_call("nope")], "sorry"]})

    result = await _graph(accord.Agent("a", tools=[boom])).run("x", backend=backend)

    assert result.output is not None and result.output.text == "sorry"
    (_, exc), (_, unknown) = _tool_turns(backend.requests[1])
    assert "RuntimeError: disk on fire" in exc
    assert "no tool 'nope'" in unknown


async def test_agent_tool_past_its_timeout_is_cancelled() -> None:
    cancelled = asyncio.Event()

    async def hang() -> str:
        """Never finish."""
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "late"

    backend = ScriptedBackend({"a": [tool_call("hang"), "gave up"]})
    agent = accord.Agent("a", tools=[Tool(hang, timeout=0.1)])

    result = await _graph(agent).run("x", backend=backend)

    assert result.output is not None and result.output.text == "gave up"
    assert "did not finish within 0.1 s" in _tool_turns(backend.requests[1])[0][1]
    assert cancelled.is_set()


async def test_agent_max_tool_calls_stops_calls_and_asks_for_an_answer() -> None:
    ran: list[int] = []

    def tick(n: int) -> int:
        """Count."""
        ran.append(n)
        return n

    backend = ScriptedBackend(
        {"a": [[tool_call("tick", n=1), tool_call("tick", n=2), tool_call("tick", n=3)], "ok"]}
    )
    agent = accord.Agent("a", tools=[tick], max_tool_calls=2)

    result = await _graph(agent).run("x", backend=backend)

    assert result.output is not None and result.output.text == "ok"
    assert ran == [1, 2]
    assert "limit" in _tool_turns(backend.requests[-1])[2][1]
    assert backend.requests[-1].tool_choice == "none"


async def test_agent_that_keeps_calling_past_the_limit_fails_with_tool_loop_error() -> None:
    backend = ScriptedBackend({"a": [tool_call("add", a=1, b=1), tool_call("add", a=1, b=1)]})
    agent = accord.Agent("a", tools=[add], max_tool_calls=1)

    with pytest.raises(ToolLoopError, match="max_tool_calls"):
        await _graph(agent).run("x", backend=backend)


async def test_agent_too_many_failed_calls_fail_with_tool_loop_error() -> None:
    bad = ToolCall(id="", name="add", arguments="not json")
    backend = ScriptedBackend({"a": [bad, bad, "never"]})
    agent = accord.Agent("a", tools=[add], max_tool_errors=1)

    with pytest.raises(ToolLoopError, match="2 tool calls failed"):
        await _graph(agent).run("x", backend=backend)


class Weather(BaseModel):
    city: str
    celsius: float


async def test_agent_tool_results_are_serialised_for_the_model() -> None:
    async def weather(city: str) -> Weather:
        """Weather now."""
        return Weather(city=city, celsius=21.5)

    def listing() -> dict[str, Any]:
        """Some JSON."""
        return {"files": ["a.txt"], "count": 1}

    backend = ScriptedBackend(
        {"a": [[tool_call("weather", city="Oslo"), tool_call("listing")], "k"]}
    )

    await _graph(accord.Agent("a", tools=[weather, listing])).run("x", backend=backend)

    (_, w), (_, files) = _tool_turns(backend.requests[1])
    assert json.loads(w) == {"city": "Oslo", "celsius": 21.5}
    assert json.loads(files) == {"files": ["a.txt"], "count": 1}


async def test_function_backend_scripts_tool_calls_from_the_request() -> None:
    def model(request: Request) -> Any:
        if not any(m.role == "tool" for m in request.messages):
            return [tool_call("add", a=40, b=2)]
        return f"answer {request.messages[-1].content}"

    result = await _graph(accord.Agent("a", tools=[add])).run("x", backend=FunctionBackend(model))

    assert result.output is not None and result.output.text == "answer 42"


async def test_agent_tool_events_are_emitted_in_order() -> None:
    backend = ScriptedBackend({"a": [tool_call("add", a=1, b=2), "3"]})
    seen: list[Any] = []

    await _graph(accord.Agent("a", tools=[add])).run("x", backend=backend, on_event=seen.append)

    kinds = [e.kind for e in seen if e.kind.startswith("tool_")]
    assert kinds == ["tool_call", "tool_result"]
    result_event = next(e for e in seen if e.kind == "tool_result")
    assert (result_event.tool, result_event.result, result_event.error) == ("add", "3", None)


async def test_agent_with_payload_output_uses_tools_then_validates() -> None:
    backend = ScriptedBackend({"a": [tool_call("add", a=1, b=2), '{"answer": "3"}']})
    agent = accord.Agent("a", tools=[add], output=accord.Answer)

    result = await _graph(agent).run("x", backend=backend)

    assert isinstance(result.output.payload if result.output else None, accord.Answer)


def test_completion_tool_calls_default_to_none() -> None:
    assert Completion.of_text("hi").tool_calls == ()


async def test_agent_tool_calls_survive_token_streaming() -> None:
    backend = ScriptedBackend({"a": [tool_call("add", a=4, b=5), "nine"]})
    seen: list[Any] = []

    result = await _graph(accord.Agent("a", tools=[add])).run(
        "x", backend=backend, on_event=seen.append, stream_tokens=True
    )

    assert result.output is not None and result.output.text == "nine"
    assert _tool_turns(backend.requests[1]) == [("add", "9")]
