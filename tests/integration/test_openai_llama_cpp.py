"""OpenAIBackend against a real third-party server: llama-cpp-python serving a tiny GGUF model.

The model has random weights: the checks are about structure (finish reasons, usage, logprob
shapes, JSON syntax under JSON mode, real 400/401 errors), never about what it says.
"""

from __future__ import annotations

import asyncio
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
    async with backend(llama_server, on_truncation="return", local=False) as b:
        result = await b.complete(ask(max_tokens=8, temperature=0))
        again = await b.complete(ask(max_tokens=8, temperature=0))
    assert result.finish_reason in ("length", "stop")
    assert result.text and result.text == again.text  # greedy decoding repeats
    assert result.usage.prompt_tokens > 10 and 0 < result.usage.completion_tokens <= 8
    assert result.usage.requests == 1 and not result.usage.estimated


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
    async with backend(llama_server, on_truncation="return", structured="json_object") as b:
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
    # Streamed (the local default), llama-cpp-python answers an overflow with an empty event
    # stream; accord then asks once without streaming to get the server's real error.
    assert info.value.status_code == 400 and info.value.attempts <= 2
    assert "maximum context length" in str(info.value)


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


# ---------------------------------------------------------------------- issue 11: real servers

CHECK = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}, "n": {"type": "integer"}},
    "required": ["ok", "n"],
}


def posts(server: LlamaServer) -> int:
    """Chat requests the server received (its access log has one line per request)."""
    return server.log.read_text(errors="replace").count('"POST /v1/chat/completions HTTP')


async def test_llama_cpp_auto_falls_back_to_json_object_with_schema(
    llama_server: LlamaServer,
) -> None:
    """llama-cpp-python answers 500 to json_schema; auto moves on to its grammar-constrained
    json_object+schema once, and the output then has exactly the schema's shape."""
    before = posts(llama_server)
    async with backend(llama_server, on_truncation="return", local=False) as b:
        assert b.structured == "auto" and b.structured_output == "json_schema"
        answers = [
            await b.complete(ask("Reply.", max_tokens=40, seed=s, response_schema=CHECK))
            for s in range(3)
        ]
        assert b.structured_output == "json_object+schema"
        assert b.capabilities.structured_output
    assert posts(llama_server) - before == 4  # one refused json_schema request, then 3
    assert [a.usage.requests for a in answers] == [2, 1, 1]
    for answer in answers:
        data = json.loads(answer.text)
        assert set(data) == {"ok", "n"} and isinstance(data["ok"], bool)
        assert isinstance(data["n"], int)


async def test_llama_cpp_json_object_with_schema_streams_valid_json(
    llama_server: LlamaServer,
) -> None:
    """The local default path: complete() streamed under the hood, grammar-constrained."""
    async with backend(llama_server, structured="json_object+schema") as b:
        assert b.local and not b.retry_timeouts
        result = await b.complete(ask("Reply.", max_tokens=40, response_schema=CHECK))
    assert set(json.loads(result.text)) == {"ok", "n"}
    assert result.usage.estimated  # llama-cpp-python sends no usage chunk; the figure says so
    assert b.limiter.max_concurrency == 1  # no /props or /slots: the documented default


async def test_llama_cpp_twenty_concurrent_runs_on_the_default_backend(
    llama_server: LlamaServer,
) -> None:
    """20 graph runs at once on one backend at default settings (but for accepting the random
    model's cut-off text, and a 1.5 s timeout standing in for 60 s with a real model's speed):
    no timeouts, no re-sent request. Before, all 20 went to the one-slot server at once and the
    last ones spent their timeout in its queue."""
    before = posts(llama_server)
    b = accord.backend(
        f"openai:{llama_server.model}",
        base_url=llama_server.base_url,
        api_key=llama_server.api_key,
        on_truncation="return",
        timeout=1.5,
    )
    assert isinstance(b, OpenAIBackend)

    def graph() -> accord.Graph:
        solver = accord.Solver("solver", max_tokens=24, temperature=0.7)
        critic = accord.Agent("critic", output=Grade, max_tokens=40, temperature=0)
        g = accord.Graph("pair")
        g.add(solver, critic)
        g.connect("solver", "critic")
        g.set_entry("solver")
        g.set_exit("critic")
        return g

    async with b:
        results = await asyncio.gather(
            *(graph().run(f"Task {i}.", b) for i in range(20)), return_exceptions=True
        )
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    done = [r for r in results if not isinstance(r, BaseException)]
    assert all(r.status == "completed" for r in done), [r.error for r in done]
    assert sum(r.usage.requests for r in done) == posts(llama_server) - before  # none re-sent
