"""accord.testing: the scripted and function backends, and the switch that forbids real ones."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import accord
from accord.backends.base import ChatMessage, Completion, Request
from accord.errors import ProviderTimeoutError, ScriptExhaustedError, UsageError
from accord.messages import Usage
from accord.testing import FunctionBackend, ScriptedBackend, estimate_tokens, forbid_real_backends


def _request(agent: str, text: str = "hi", round: int = 0) -> Request:
    return Request(messages=(ChatMessage(role="user", content=text),), agent=agent, round=round)


async def test_scripted_backend_answers_each_agent_in_order() -> None:
    backend = ScriptedBackend({"a": ["a1", "a2"], "b": ["b1"]})

    texts = [(await backend.complete(_request(agent))).text for agent in ("a", "b", "a")]

    assert texts == ["a1", "b1", "a2"]
    assert backend.calls() == 3
    assert backend.calls("a") == 2
    assert [r.agent for r in backend.requests] == ["a", "b", "a"]


async def test_scripted_backend_star_serves_unnamed_agents() -> None:
    backend = ScriptedBackend({"a": ["for a"], "*": ["shared 1", "shared 2"]})

    assert (await backend.complete(_request("a"))).text == "for a"
    assert (await backend.complete(_request("x"))).text == "shared 1"
    assert (await backend.complete(_request("y"))).text == "shared 2"


async def test_scripted_backend_reports_usage_from_text_length() -> None:
    backend = ScriptedBackend({"a": ["x" * 40]})

    completion = await backend.complete(_request("a", text="y" * 8))

    assert completion.usage == Usage(requests=1, prompt_tokens=2, completion_tokens=10)
    assert completion.finish_reason == "stop"
    assert (estimate_tokens(""), estimate_tokens("abc"), estimate_tokens("abcde")) == (0, 1, 2)


async def test_scripted_backend_raises_scripted_exceptions_and_returns_completions() -> None:
    canned = Completion.of_text("canned", usage=Usage(requests=1, cost=0.25))
    backend = ScriptedBackend({"a": [ProviderTimeoutError("slow provider"), canned]})

    with pytest.raises(ProviderTimeoutError, match="slow provider"):
        await backend.complete(_request("a"))
    assert await backend.complete(_request("a")) is canned


async def test_scripted_backend_unknown_agent_raises_script_exhausted_error() -> None:
    backend = ScriptedBackend({"a": ["x"]})

    with pytest.raises(ScriptExhaustedError, match="no replies for agent 'b'") as info:
        await backend.complete(_request("b"))

    assert (info.value.agent, info.value.calls) == ("b", 0)
    assert isinstance(info.value, UsageError)


async def test_scripted_backend_exhausted_script_names_agent_and_round() -> None:
    backend = ScriptedBackend({"a": ["only one"]})
    await backend.complete(_request("a"))

    with pytest.raises(ScriptExhaustedError, match=r"reply 2, but the script has only 1.*round 3"):
        await backend.complete(_request("a", round=3))


async def test_scripted_backend_exhausted_inside_a_run_fails_the_run() -> None:
    g = accord.Graph("g").add(accord.Agent("a"))
    g.connect("a", "a", when=lambda m: True).set_entry("a").set_exit("a")

    with pytest.raises(ScriptExhaustedError):
        await g.run("t", backend=ScriptedBackend({"a": ["x", "y"]}))


async def test_scripted_backend_delay_simulates_latency() -> None:
    backend = ScriptedBackend({"a": ["x"]}, delay=0.03)

    started = time.perf_counter()
    await backend.complete(_request("a"))

    assert time.perf_counter() - started >= 0.025


async def test_scripted_backend_streams_words_then_finish_and_usage() -> None:
    backend = ScriptedBackend({"a": ["one two three"]})

    deltas = [d async for d in backend.stream(_request("a"))]

    assert [d.text for d in deltas] == ["one", " two", " three", ""]
    assert deltas[-1].finish_reason == "stop"
    assert deltas[-1].usage is not None and deltas[-1].usage.requests == 1


async def test_function_backend_calls_sync_and_async_functions() -> None:
    sync = FunctionBackend(lambda r: f"{r.agent} round {r.round}")

    async def slow(request: Request) -> str:
        await asyncio.sleep(0)
        return request.messages[-1].content.upper()

    assert (await sync.complete(_request("a", round=2))).text == "a round 2"
    assert (await FunctionBackend(slow).complete(_request("a", "shout"))).text == "SHOUT"
    assert sync.calls() == 1 and sync.calls("a") == 1 and sync.calls("b") == 0


async def test_function_backend_passes_a_completion_through() -> None:
    canned = Completion.of_text("as is", usage=Usage(requests=1, prompt_tokens=7))

    assert await FunctionBackend(lambda r: canned).complete(_request("a")) is canned


def test_fakes_satisfy_the_backend_protocol() -> None:
    assert isinstance(ScriptedBackend({}), accord.Backend)
    assert isinstance(FunctionBackend(lambda r: ""), accord.Backend)


async def test_forbid_real_backends_refuses_a_real_call_and_restores_after() -> None:
    from accord.backends import _guard

    real = accord.backend("openai:gpt-4o-mini", base_url="http://127.0.0.1:9/v1", api_key="sk-x")

    with forbid_real_backends():
        assert _guard.is_forbidden()
        with pytest.raises(UsageError, match="real backends are forbidden here"):
            await real.complete(_request("a"))
        with forbid_real_backends():
            pass
        assert _guard.is_forbidden()
    assert not _guard.is_forbidden()


async def test_forbid_real_backends_lets_fakes_run() -> None:
    g = accord.Graph("g").add(accord.Agent("a"))

    with forbid_real_backends():
        result = await g.run("t", backend=ScriptedBackend({"a": ["fine"]}))

    assert result.text == "fine"


def test_runs_in_the_test_suite_write_no_run_store_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tests/conftest.py sets ACCORD_DURABILITY=off: a test opts in to the store explicitly.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ACCORD_STORE", raising=False)

    accord.Graph("g").add(accord.Agent("a")).run_sync("t", ScriptedBackend({"a": ["x"]}))

    assert list(tmp_path.iterdir()) == []
