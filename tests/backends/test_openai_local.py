"""OpenAIBackend against servers as people run them: structured-output modes and their fallback,
local-server slots and timeouts, the deadline on a whole stream, what counts as a request,
streamed usage, and retries reaching the run's events. All against the fault server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from fault_server import (
    CANARY_KEY,
    FakeTime,
    FaultServer,
    Recorded,
    Reply,
    completion,
    sse_events,
)

import accord
from accord.backends import ChatMessage, Request
from accord.backends.openai import OpenAIBackend, RetryPolicy
from accord.errors import (
    ConfigError,
    ProviderRequestError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    StreamInterruptedError,
)
from accord.runtime import events as ev

SCHEMA = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


def req(text: str = "hello", **kw: Any) -> Request:
    return Request(messages=(ChatMessage(role="user", content=text),), **kw)


def schema_req() -> Request:
    messages = (
        ChatMessage(role="system", content="Be brief."),
        ChatMessage(role="user", content="ok?"),
    )
    return Request(messages=messages, response_schema=SCHEMA, schema_name="Check")


def posts(server: FaultServer) -> list[Recorded]:
    return [r for r in server.requests if r.method == "POST"]


def make(server: FaultServer, **kw: Any) -> OpenAIBackend:
    return OpenAIBackend("m", base_url=server.base_url, api_key=CANARY_KEY, **kw)


# ---------------------------------------------------------------------- structured modes


@pytest.mark.parametrize(
    ("mode", "response_format", "note"),
    [
        ("json_schema", {"type": "json_schema", "json_schema": {"name": "Check", "schema": SCHEMA}}, False),
        ("json_object+schema", {"type": "json_object", "schema": SCHEMA}, False),
        ("json_object", {"type": "json_object"}, True),
        ("instructions", None, True),
    ],
)  # fmt: skip
async def test_structured_mode_sends_what_each_server_kind_takes(
    server: FaultServer, mode: str, response_format: dict[str, Any] | None, note: bool
) -> None:
    server.script(Reply.json(completion('{"ok": true}')))
    backend = accord.backend("openai:m", base_url=server.base_url, structured=mode, local=False)
    assert isinstance(backend, OpenAIBackend)
    assert (await backend.complete(schema_req())).text == '{"ok": true}'
    body = server.requests[0].body
    assert body.get("response_format") == response_format
    system = body["messages"][0]["content"]
    assert ("JSON schema" in system) is note and system.startswith("Be brief.")
    assert backend.capabilities.structured_output is (mode in ("json_schema", "json_object+schema"))


def refuses_json_schema(request: Recorded) -> Reply:
    """llama-cpp-python's answer: 500 with a validation message naming response_format."""
    kind = (request.body.get("response_format") or {}).get("type")
    if kind == "json_schema":
        return Reply.error(
            500, "1 validation error: body.response_format.type: Input should be 'text' or "
            "'json_object' (input 'json_schema')",
        )  # fmt: skip
    if request.body.get("stream"):
        return Reply.stream(sse_events(['{"ok":', " false}"]))
    return Reply.json(completion('{"ok": false}'))


async def test_structured_auto_falls_back_once_and_remembers(server: FaultServer) -> None:
    server._default = refuses_json_schema
    backend = make(server)  # local, structured="auto"
    first = await backend.complete(schema_req())
    second = await backend.complete(schema_req())
    sent = posts(server)
    kinds = [(r.body.get("response_format") or {}).get("type") for r in sent]
    assert kinds == ["json_schema", "json_object", "json_object"]
    assert sent[1].body["response_format"]["schema"] == SCHEMA
    assert backend.structured_output == "json_object+schema"
    assert first.text == second.text == '{"ok": false}'
    assert (first.usage.requests, second.usage.requests) == (2, 1)  # the refused one reached it


async def test_structured_auto_does_not_fall_back_on_a_content_error(server: FaultServer) -> None:
    server.script(Reply.error(400, "Requested tokens (6004) exceed context window of 2048"))
    backend = make(server)
    with pytest.raises(ProviderRequestError):
        await backend.complete(schema_req())
    assert len(posts(server)) == 1 and backend.structured_output == "json_schema"


async def test_structured_fixed_mode_refused_is_not_retried_and_says_what_to_try(
    server: FaultServer,
) -> None:
    server._default = refuses_json_schema
    backend = make(server, structured="json_schema", retry=RetryPolicy(initial_backoff=0))
    with pytest.raises(ProviderUnavailableError, match="structured='auto'"):
        await backend.complete(schema_req())
    assert len(posts(server)) == 1


def test_structured_rejects_unknown_modes(no_proxy_env: None) -> None:
    with pytest.raises(ConfigError, match="json_object\\+schema"):
        OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", structured="grammar")  # type: ignore[arg-type]


@pytest.mark.parametrize("url", ["localhost:8095/v1", "127.0.0.1:8080", "http:///v1", "ftp://h/v1"])
def test_base_url_without_scheme_or_host_is_a_config_error(no_proxy_env: None, url: str) -> None:
    with pytest.raises(ConfigError, match="http://"):
        accord.backend("openai:m", base_url=url)


# ---------------------------------------------------------------------- local servers


async def test_local_server_concurrency_follows_its_slots(server: FaultServer) -> None:
    server.routes["GET /props"] = Reply.json({"total_slots": 3})
    server._default = Reply.json(completion("x"), delay=0.2)
    backend = make(server)
    await asyncio.gather(*(backend.complete(req(logprobs=True)) for _ in range(6)))
    assert backend.limiter.max_concurrency == 3 and server.max_in_flight == 3


async def test_local_server_without_slot_info_gets_one_request_at_a_time(
    server: FaultServer,
) -> None:
    server._default = Reply.stream(sse_events(["a", "b"]), delay=0.05)
    backend = make(server)
    results = await asyncio.gather(*(backend.complete(req()) for _ in range(4)))
    assert [r.text for r in results] == ["ab"] * 4
    assert backend.limiter.max_concurrency == 1 and server.max_in_flight == 1
    assert [r.path for r in server.probes] == ["/props", "/slots"]  # asked once
    raised = make(server, max_concurrency=4)
    assert raised.limiter.max_concurrency == 4


async def test_local_server_slots_are_shared_by_every_backend_of_that_server(
    server: FaultServer,
) -> None:
    """Agents that each resolve "openai:m" get their own instance; the one slot is still one."""
    server._default = Reply.stream(sse_events(["a"]), delay=0.05)
    backends = [make(server) for _ in range(3)]
    await asyncio.gather(*(b.complete(req()) for b in backends for _ in range(2)))
    assert server.max_in_flight == 1 and len(server.requests) == 6
    assert make(server, max_concurrency=2).limiter is not backends[0].limiter


async def test_local_server_timeout_measures_silence_not_generation(server: FaultServer) -> None:
    """10 chunks 0.15 s apart take 1.5 s, three times the 0.5 s timeout: silence never passes it."""
    server.script(Reply.stream(sse_events(list("abcdefghij")), chunk_delay=0.15))
    backend = make(server, timeout=0.5)
    started = time.monotonic()
    result = await backend.complete(req())
    assert result.text == "abcdefghij" and time.monotonic() - started > 1.4
    assert server.requests[-1].body["stream"] is True


async def test_local_server_timed_out_generation_is_not_resent(server: FaultServer) -> None:
    server._default = Reply(hang=True)
    backend = make(server, timeout=0.3)
    with pytest.raises(ProviderTimeoutError, match="Not re-sent") as info:
        await backend.complete(req(logprobs=True))
    assert len(posts(server)) == 1
    assert info.value.attempts == 1
    again = make(server, timeout=0.3, retry_timeouts=True, retry=RetryPolicy(attempts=2))
    with pytest.raises(ProviderTimeoutError):
        await again.complete(req(logprobs=True))
    assert len(posts(server)) == 3


async def test_waiting_for_a_slot_is_neither_an_attempt_nor_a_request(server: FaultServer) -> None:
    """Three callers on one slot, each request 0.3 s, waits capped at 0.1 s: 3 requests, not 7."""
    server._default = Reply.json(completion("x"), delay=0.3)
    backend = make(server, max_concurrency=1, local=False, retry=RetryPolicy(max_wait=0.1))
    results = await asyncio.gather(*(backend.complete(req()) for _ in range(3)))
    assert [r.usage.requests for r in results] == [1, 1, 1]
    assert len(server.requests) == 3


# ---------------------------------------------------------------------- streams


async def test_stream_deadline_holds_for_the_whole_stream(server: FaultServer) -> None:
    """One chunk per 0.2 s for 4 s against a 1 s deadline: stopped near 1 s, partial text kept."""
    server.script(Reply.stream(sse_events(["x"] * 20), chunk_delay=0.2))
    backend = make(server, local=False, retry=RetryPolicy(timeout=5, deadline=1))
    got: list[str] = []
    started = time.monotonic()
    with pytest.raises(StreamInterruptedError, match="deadline of 1 s") as info:
        async for delta in backend.stream(req()):
            got.append(delta.text)
    assert time.monotonic() - started < 1.6
    assert 2 <= len(got) <= 6 and info.value.partial_text == "".join(got)


async def test_stream_asks_for_usage_and_uses_the_usage_chunk(server: FaultServer) -> None:
    server.script(Reply.stream(sse_events(["4", "2"], usage=(17, 2))))
    backend = make(server, local=False)
    last = [d async for d in backend.stream(req())][-1]
    assert server.requests[0].body["stream_options"] == {"include_usage": True}
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (17, 2)
    assert last.usage.estimated is False


async def test_stream_without_usage_chunk_marks_the_figure_estimated(server: FaultServer) -> None:
    server.script(Reply.stream(sse_events(["forty-two"])))
    result = await make(server).complete(req())  # local: streamed under the hood
    assert result.usage.estimated is True and result.usage.completion_tokens > 0
    total = result.usage + accord.Usage(requests=1, prompt_tokens=3, completion_tokens=1)
    assert total.estimated is True


# ---------------------------------------------------------------------- retries in the run


async def test_retry_reaches_the_run_events(server: FaultServer, fake_time: FakeTime) -> None:
    server.script(Reply.error(503, "busy"), Reply.json(completion("done")))
    backend = make(server, local=False, sleep=fake_time.sleep, clock=fake_time.clock)
    graph = accord.Graph("retry")
    graph.add(accord.Solver("solver"))
    graph.set_entry("solver")
    graph.set_exit("solver")
    seen: list[object] = []
    result = await graph.run("2+2?", backend, on_event=seen.append)
    retries = [e for e in seen if isinstance(e, ev.RetryEvent)]
    assert result.status == "completed" and len(server.requests) == 2
    assert [(r.node, r.attempt, r.status_code) for r in retries] == [("solver", 1, 503)]
    assert result.usage.requests == 2


async def test_local_server_that_ignores_stream_true_still_answers(server: FaultServer) -> None:
    server.script(Reply.json(completion("whole", usage=(9, 2))))
    result = await make(server).complete(req())  # local: asked for a stream, got one JSON body
    assert server.requests[0].body["stream"] is True
    assert (result.text, result.usage.prompt_tokens, result.usage.estimated) == ("whole", 9, False)
