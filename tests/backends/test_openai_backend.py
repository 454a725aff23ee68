"""OpenAIBackend against the loopback fault server: what is sent, what comes back."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import subprocess
import sys

import pytest
from fault_server import CANARY_KEY, FakeTime, FaultServer, Reply, completion, sse_events

import accord.backends
from accord.backends import ChatMessage, Request
from accord.backends.openai import OpenAIBackend, Price
from accord.errors import (
    ConfigError,
    EmptyCompletionError,
    InvalidProviderResponseError,
    RefusalError,
    TruncatedOutputError,
    UsageError,
)
from accord.testing import forbid_real_backends

SCHEMA = {
    "title": "Verdict",
    "type": "object",
    "properties": {"approved": {"type": "boolean"}},
    "required": ["approved"],
}


def req(text: str = "hello", *, system: str | None = None, **kw: object) -> Request:
    messages = [ChatMessage(role="system", content=system)] if system is not None else []
    messages.append(ChatMessage(role="user", content=text))
    return Request(messages=tuple(messages), **kw)  # type: ignore[arg-type]


def make(server: FaultServer, fake_time: FakeTime, **kw: object) -> OpenAIBackend:
    return OpenAIBackend(
        "test-model",
        base_url=server.base_url,
        api_key=CANARY_KEY,
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        **{"local": False, **kw},  # type: ignore[arg-type]
    )


async def test_complete_returns_text_usage_and_cost(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.json(completion("four", usage=(1_000_000, 2_000_000))))
    backend = make(server, fake_time, prices={"test-model": (0.5, 2.0)})
    result = await backend.complete(req("2+2?"))
    assert result.text == "four"
    assert result.finish_reason == "stop"
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (1_000_000, 2_000_000)
    assert result.usage.requests == 1
    assert result.usage.cost == pytest.approx(0.5 + 4.0)
    assert result.model == "test-model"
    assert server.requests[0].headers["authorization"] == f"Bearer {CANARY_KEY}"


async def test_complete_sends_sampling_options_and_never_the_caller_identity(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.json(completion("ok")))
    request = req(
        "hi",
        system="be brief",
        temperature=0.3,
        top_p=0.9,
        max_tokens=17,
        stop=("END",),
        seed=7,
        agent="critic-7",
        round=3,
        run_id="run-xyz",
    )
    await make(server, fake_time).complete(request)
    body = server.requests[0].body
    assert body["model"] == "test-model"
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.3, 0.9, 17)
    assert (body["stop"], body["seed"]) == (["END"], 7)
    raw = json.dumps(server.requests[0].body) + json.dumps(server.requests[0].headers)
    for secret_field in ("critic-7", "run-xyz"):
        assert secret_field not in raw
    assert "n" not in body and "logprobs" not in body and "response_format" not in body


async def test_complete_max_completion_tokens_param_is_configurable(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.json(completion("ok")))
    await make(server, fake_time, max_tokens_param="max_completion_tokens").complete(
        req(max_tokens=5)
    )
    assert server.requests[0].body["max_completion_tokens"] == 5
    assert "max_tokens" not in server.requests[0].body


async def test_complete_parses_logprobs_and_top_logprobs(
    server: FaultServer, fake_time: FakeTime
) -> None:
    lps = [("Hel", -0.1, [("Hel", -0.1), ("Hi", -2.5)]), ("lo", -0.2, [("lo", -0.2)])]
    server.script(Reply.json(completion("Hello", logprobs=lps)))
    result = await make(server, fake_time).complete(req(logprobs=True, top_logprobs=2))
    assert server.requests[0].body["logprobs"] is True
    assert server.requests[0].body["top_logprobs"] == 2
    tokens = result.choices[0].logprobs
    assert tokens is not None
    assert [(t.token, t.logprob) for t in tokens] == [("Hel", -0.1), ("lo", -0.2)]
    assert tokens[0].top == (("Hel", -0.1), ("Hi", -2.5))


async def test_complete_native_n_returns_every_candidate(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.json(completion("a", "b", "c")))
    result = await make(server, fake_time, native_n=True).complete(req(n=3))
    assert [c.text for c in result.choices] == ["a", "b", "c"]
    assert server.requests[0].body["n"] == 3
    assert len(server.requests) == 1


async def test_complete_native_n_with_fewer_choices_is_an_error(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.json(completion("only one")))
    with pytest.raises(InvalidProviderResponseError, match="native_n=False"):
        await make(server, fake_time, native_n=True).complete(req(n=2))


async def test_complete_without_native_n_makes_n_requests(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(*(Reply.json(completion(t, usage=(2, 1))) for t in ("x", "y", "z")))
    backend = make(server, fake_time)
    assert backend.capabilities.n is False
    result = await backend.complete(req(n=3))
    assert sorted(c.text for c in result.choices) == ["x", "y", "z"]
    assert len(server.requests) == 3
    assert all("n" not in r.body for r in server.requests)
    assert (result.usage.requests, result.usage.prompt_tokens) == (3, 6)


@pytest.mark.parametrize(
    ("mode", "expected_format", "instructed"),
    [
        ("json_schema", "json_schema", False),
        ("json_object", "json_object", True),
        ("instructions", None, True),
    ],
)
async def test_complete_structured_output_modes(
    server: FaultServer,
    fake_time: FakeTime,
    mode: str,
    expected_format: str | None,
    instructed: bool,
) -> None:
    server.script(Reply.json(completion('{"approved": true}')))
    backend = make(server, fake_time, structured_output=mode)
    await backend.complete(
        req("judge", system="You judge.", response_schema=SCHEMA, schema_name="Verdict")
    )
    body = server.requests[0].body
    assert body.get("response_format", {}).get("type") == expected_format
    if expected_format == "json_schema":
        assert body["response_format"]["json_schema"] == {"name": "Verdict", "schema": SCHEMA}
    system = body["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("You judge.")
    assert ('"approved"' in system["content"]) is instructed
    assert backend.capabilities.structured_output is (mode == "json_schema")


async def test_complete_structured_output_instructions_add_a_system_message_when_none(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.json(completion("{}")))
    await make(server, fake_time, structured_output="instructions").complete(
        req("x", response_schema=SCHEMA)
    )
    messages = server.requests[0].body["messages"]
    assert [m["role"] for m in messages] == ["system", "user"]
    assert "JSON" in messages[0]["content"]


def test_backend_defaults_depend_on_the_server(no_proxy_env: None) -> None:
    local = OpenAIBackend("m", base_url="http://127.0.0.1:9/v1")
    official = OpenAIBackend("gpt-4o-mini", api_key="sk-x")
    assert (local.structured, local.structured_output, local.native_n) == (
        "auto",
        "json_schema",
        False,
    )
    assert (local.local, local.retry_timeouts, official.local, official.retry_timeouts) == (
        True,
        False,
        False,
        True,
    )
    assert (official.structured_output, official.native_n) == ("json_schema", True)
    assert (local.policy.timeout, local.policy.deadline) == (300, 900)
    assert (official.policy.timeout, official.policy.deadline) == (60, 300)
    assert official.name == "openai:gpt-4o-mini"


def test_backend_without_key_for_openai_is_a_config_error(no_proxy_env: None) -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIBackend("gpt-4o-mini")


def test_backend_reads_key_from_environment(
    no_proxy_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    backend = OpenAIBackend("gpt-4o-mini")
    assert CANARY_KEY not in repr(backend) and CANARY_KEY not in str(backend)
    assert "api_key='***'" in repr(backend)


def test_backend_repr_hides_url_credentials(no_proxy_env: None) -> None:
    backend = OpenAIBackend(
        "m", base_url="http://user:hunter2@127.0.0.1:9/v1?key=abc", api_key=CANARY_KEY
    )
    text = repr(backend)
    assert "hunter2" not in text and "abc" not in text and CANARY_KEY not in text


def test_backend_resolves_through_the_registry(no_proxy_env: None) -> None:
    backend = accord.backends.backend(
        "openai:tiny", base_url="http://127.0.0.1:9/v1", max_concurrency=2
    )
    assert isinstance(backend, OpenAIBackend)
    assert isinstance(backend, accord.backends.Backend)
    assert backend.limiter.max_concurrency == 2


def test_price_table_accepts_models_and_rejects_garbage(no_proxy_env: None) -> None:
    backend = OpenAIBackend(
        "m",
        base_url="http://127.0.0.1:9/v1",
        prices={"m": Price(input_per_million=1, output_per_million=2)},
    )
    assert backend.prices["m"].output_per_million == 2
    with pytest.raises(ConfigError, match="price for 'm'"):
        OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", prices={"m": "cheap"})  # type: ignore[dict-item]


def test_import_accord_does_not_import_the_openai_sdk() -> None:
    code = "import sys, accord, accord.backends, accord.backends.openai; print('openai' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_complete_is_refused_inside_forbid_real_backends(
    server: FaultServer, fake_time: FakeTime
) -> None:
    backend = make(server, fake_time)
    with forbid_real_backends(), pytest.raises(UsageError, match="forbidden"):
        await backend.complete(req())
    assert server.requests == []


# ---------------------------------------------------------------------- degenerate payloads


async def test_complete_null_content_is_an_empty_completion(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.json(completion(None)))
    with pytest.raises(EmptyCompletionError):
        await make(server, fake_time).complete(req())
    assert len(server.requests) == 1


async def test_complete_refusal_raises_refusal_error(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.json(completion(None, refusal="I can't help with that.")))
    with pytest.raises(RefusalError) as info:
        await make(server, fake_time).complete(req())
    assert info.value.refusal == "I can't help with that."


async def test_complete_missing_usage_is_estimated(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.json(completion("a" * 40, usage=None)))
    result = await make(server, fake_time).complete(req("b" * 20))
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (5, 10)


async def test_complete_length_is_a_truncation_error_by_default(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.json(completion("half a sent", finish_reason="length")))
    with pytest.raises(TruncatedOutputError) as info:
        await make(server, fake_time).complete(req())
    assert (info.value.partial_text, info.value.finish_reason) == ("half a sent", "length")
    assert len(server.requests) == 1


async def test_complete_length_is_returned_flagged_when_asked(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.json(completion("half a sent", finish_reason="length")))
    result = await make(server, fake_time, on_truncation="return").complete(req())
    assert (result.text, result.finish_reason) == ("half a sent", "length")


# ---------------------------------------------------------------------- streaming


async def test_stream_yields_text_deltas_then_finish_and_usage(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.stream(sse_events(["Hel", "lo", "!"], usage=(4, 3))))
    backend = make(server, fake_time, prices={"test-model": (1e6, 1e6)})
    deltas = [d async for d in backend.stream(req())]
    assert [d.text for d in deltas[:-1]] == ["Hel", "lo", "!"]
    last = deltas[-1]
    assert (last.text, last.finish_reason) == ("", "stop")
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.requests) == (
        4,
        3,
        1,
    )
    assert last.usage.cost == pytest.approx(7.0)
    body = server.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


async def test_stream_without_usage_chunk_estimates_usage(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.stream(sse_events(["abcd", "efgh"], usage=None)))
    deltas = [d async for d in make(server, fake_time).stream(req("12345678"))]
    assert deltas[-1].usage is not None
    assert (deltas[-1].usage.prompt_tokens, deltas[-1].usage.completion_tokens) == (2, 2)


async def test_stream_usage_option_can_be_turned_off(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.stream(sse_events(["x"])))
    [d async for d in make(server, fake_time, stream_usage=False).stream(req())]
    assert "stream_options" not in server.requests[0].body


async def test_stream_length_is_truncation_after_the_text(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.stream(sse_events(["a", "b"], finish_reason="length")))
    seen: list[str] = []
    with pytest.raises(TruncatedOutputError) as info:
        async for delta in make(server, fake_time).stream(req()):
            seen.append(delta.text)
    assert seen == ["a", "b"]
    assert info.value.partial_text == "ab"


async def test_stream_length_returned_flagged_when_asked(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.stream(sse_events(["a"], finish_reason="length")))
    deltas = [d async for d in make(server, fake_time, on_truncation="return").stream(req())]
    assert deltas[-1].finish_reason == "length"


async def test_stream_rejects_n_above_one(server: FaultServer, fake_time: FakeTime) -> None:
    with pytest.raises(ConfigError, match="n=2"):
        [d async for d in make(server, fake_time).stream(req(n=2))]
    assert server.requests == []


async def test_stream_closed_early_releases_its_slot(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.stream(sse_events(["a", "b", "c"])), Reply.json(completion("next")))
    backend = make(server, fake_time, max_concurrency=1)
    gen = backend.stream(req())
    assert (await anext(gen)).text == "a"
    assert backend.limiter.in_flight() == 1
    await gen.aclose()
    assert backend.limiter.in_flight() == 0
    assert (await asyncio.wait_for(backend.complete(req()), 5)).text == "next"


# ---------------------------------------------------------------------- event loops


def test_backend_works_across_event_loops(no_proxy_env: None) -> None:
    backend: OpenAIBackend | None = None
    port = 0

    async def once(text: str) -> str:
        nonlocal backend, port
        async with FaultServer(default=Reply.json(completion(text)), port=port) as srv:
            port = srv.port
            if backend is None:
                backend = OpenAIBackend(
                    "m", base_url=srv.base_url, api_key=CANARY_KEY, max_concurrency=2, local=False
                )
            return (await backend.complete(req())).text

    assert asyncio.run(once("first")) == "first"
    assert asyncio.run(once("second")) == "second"


def test_a_new_event_loop_does_not_close_the_old_loops_client_on_itself(
    no_proxy_env: None, caplog: pytest.LogCaptureFixture
) -> None:
    # The SDK's own HTTP client closes itself on whatever loop runs when it is collected; a
    # client of a closed loop collected in the next asyncio.run() logged "Task exception was
    # never retrieved ... Event loop is closed" at every later run.
    backend: OpenAIBackend | None = None
    port = 0

    async def once(text: str) -> str:
        nonlocal backend, port
        async with FaultServer(default=Reply.json(completion(text)), port=port) as srv:
            port = srv.port
            if backend is None:
                backend = OpenAIBackend("m", base_url=srv.base_url, api_key=CANARY_KEY, local=False)
            text = (await backend.complete(req())).text
            gc.collect()
            await asyncio.sleep(0.05)
            return text

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        assert [asyncio.run(once(t)) for t in ("a", "b", "c")] == ["a", "b", "c"]
        gc.collect()
    assert not [r for r in caplog.records if "Event loop is closed" in str(r.exc_info or r.msg)]
