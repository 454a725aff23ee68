"""OpenAIBackend against a real third-party server: llama-cpp-python serving a tiny GGUF model.

The model has random weights: the checks are about structure (finish reasons, usage, logprob
shapes, JSON syntax under JSON mode, real 400/401 errors), never about what it says.
"""

from __future__ import annotations

import json

import pytest
from llama_server import LlamaServer
from pydantic import ConfigDict

import accord
from accord.backends import ChatMessage, Request
from accord.backends.openai import OpenAIBackend, RetryPolicy
from accord.errors import ProviderAuthError, ProviderRequestError, TruncatedOutputError

pytestmark = [pytest.mark.server, pytest.mark.usefixtures("loopback_env")]


def backend(server: LlamaServer, **kw: object) -> OpenAIBackend:
    return OpenAIBackend(
        server.model,
        base_url=server.base_url,
        api_key=server.api_key,
        retry=RetryPolicy(timeout=30, deadline=60),
        **kw,  # type: ignore[arg-type]
    )


def ask(text: str = "Say hello.", **kw: object) -> Request:
    messages = (
        ChatMessage(role="system", content="You are terse."),
        ChatMessage(role="user", content=text),
    )
    return Request(messages=messages, **kw)  # type: ignore[arg-type]


async def test_llama_cpp_chat_returns_text_and_real_usage(llama_server: LlamaServer) -> None:
    async with backend(llama_server, on_truncation="return") as b:
        result = await b.complete(ask(max_tokens=8, temperature=0))
        again = await b.complete(ask(max_tokens=8, temperature=0))
    assert result.finish_reason in ("length", "stop")
    assert result.text and result.text == again.text  # greedy decoding repeats
    assert result.usage.prompt_tokens > 10 and 0 < result.usage.completion_tokens <= 8
    assert result.usage.requests == 1


async def test_llama_cpp_length_is_reported_as_truncation(llama_server: LlamaServer) -> None:
    async with backend(llama_server) as b:
        with pytest.raises(TruncatedOutputError) as info:
            await b.complete(ask(max_tokens=4, temperature=0))
    assert info.value.finish_reason == "length" and info.value.partial_text


async def test_llama_cpp_stream_yields_deltas_then_finish_and_usage(
    llama_server: LlamaServer,
) -> None:
    async with backend(llama_server, on_truncation="return") as b:
        deltas = [d async for d in b.stream(ask(max_tokens=8, temperature=0))]
        whole = await b.complete(ask(max_tokens=8, temperature=0))
    *texts, last = deltas
    assert texts and all(d.text and d.finish_reason is None for d in texts)
    assert "".join(d.text for d in texts) == whole.text
    assert last.finish_reason == "length"
    assert last.usage is not None and last.usage.completion_tokens > 0  # estimated: no usage chunk


async def test_llama_cpp_logprobs_and_top_logprobs(llama_server: LlamaServer) -> None:
    async with backend(llama_server, on_truncation="return") as b:
        result = await b.complete(ask(max_tokens=6, temperature=0, logprobs=True, top_logprobs=3))
    tokens = result.choices[0].logprobs
    assert tokens is not None and 0 < len(tokens) <= 6
    assert "".join(t.token for t in tokens) == result.text
    for token in tokens:
        assert token.logprob <= 0 and 1 <= len(token.top) <= 3
        assert token.top[0][1] >= token.top[-1][1]


async def test_llama_cpp_json_mode_constrains_the_output(llama_server: LlamaServer) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    answers = []
    async with backend(llama_server, on_truncation="return") as b:
        assert b.structured_output == "json_object"
        for seed in range(6):
            request = ask(
                "Reply in JSON.", max_tokens=60, temperature=0.8, seed=seed, response_schema=schema
            )
            answers.append(await b.complete(request))
        plain = await backend(
            llama_server, on_truncation="return", structured_output="instructions"
        ).complete(ask("Reply in JSON.", max_tokens=6, temperature=0, response_schema=schema))
    assert all(a.text.lstrip().startswith("{") for a in answers)
    finished = [a for a in answers if a.finish_reason == "stop"]
    assert finished, [a.text for a in answers]
    assert all(isinstance(json.loads(a.text, strict=False), dict) for a in finished)
    assert not plain.text.lstrip().startswith("{")  # without JSON mode the random model rambles


async def test_llama_cpp_wrong_key_is_an_auth_error_after_one_request(
    llama_server: LlamaServer,
) -> None:
    wrong = OpenAIBackend(
        llama_server.model, base_url=llama_server.base_url, api_key="sk-wrong-key-123456"
    )
    with pytest.raises(ProviderAuthError) as info:
        await wrong.complete(ask(max_tokens=2))
    assert info.value.status_code == 401 and info.value.attempts == 1
    assert "sk-wrong-key-123456" not in str(info.value)
    await wrong.aclose()


async def test_llama_cpp_context_overflow_is_a_request_error(llama_server: LlamaServer) -> None:
    async with backend(llama_server) as b:
        with pytest.raises(ProviderRequestError) as info:
            await b.complete(ask("word " * 6000, max_tokens=2))
    assert info.value.status_code == 400 and info.value.attempts == 1


class Grade(accord.Payload):
    """A grade whose fields all have defaults, so any JSON object a random model writes under JSON
    mode validates: the test is about the path (JSON mode, parse, validate), not the content."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    approved: bool = False
    score: int = 0


async def test_llama_cpp_agent_graph_runs_end_to_end(llama_server: LlamaServer) -> None:
    """A solver -> critic loop on llama.cpp: text, then a typed payload through structured output."""
    async with backend(llama_server, on_truncation="return", structured_output="json_object") as b:
        solver = accord.Solver("solver", max_tokens=8, temperature=0)
        critic = accord.Agent("critic", output=Grade, max_tokens=60, temperature=0, reasks=3)
        graph = accord.Graph("llama")
        graph.add(solver, critic)
        graph.connect("solver", "critic")
        graph.connect("critic", "solver", when=lambda m: False, max_rounds=2)
        graph.set_entry("solver")
        graph.set_exit("critic")
        events: list[object] = []
        result = await graph.run("Say something.", b, on_event=events.append, stream_tokens=True)
    assert result.status == "completed"
    assert [m.sender for m in result.transcript] == ["solver", "critic"]
    assert isinstance(result.output and result.output.payload, Grade)
    assert result.usage.requests >= 2 and result.usage.prompt_tokens > 0
    assert set(result.usage_by_agent) == {"solver", "critic"}
    assert any(getattr(e, "kind", "") == "token" for e in events)  # tokens were streamed
