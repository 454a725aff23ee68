"""OpenAIBackend under API faults (reliability plan T1-T13, T29), against the fault server.

Waits go through the injected fake sleep, so backoff tests assert the requested delays and take
milliseconds; only the timeout and deadline tests use real time (fractions of a second).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback

import openai
import pytest
from fault_server import (
    CANARY_KEY,
    FakeTime,
    FaultServer,
    Reply,
    closed_port,
    completion,
    sse_events,
    wait_until,
)
from structlog.testing import capture_logs

from accord.backends import ChatMessage, Request
from accord.backends.openai import OpenAIBackend, RetryInfo, RetryPolicy
from accord.errors import (
    InvalidProviderResponseError,
    ProviderAuthError,
    ProviderError,
    ProviderRequestError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
    StreamInterruptedError,
    TruncatedOutputError,
)


def req(text: str = "hello") -> Request:
    return Request(messages=(ChatMessage(role="user", content=text),))


def make(server: FaultServer | str, fake_time: FakeTime | None, **kw: object) -> OpenAIBackend:
    base_url = server if isinstance(server, str) else server.base_url
    timing: dict[str, object] = (
        {"sleep": fake_time.sleep, "clock": fake_time.clock} if fake_time else {}
    )
    options = {"local": False, **timing, **kw}  # the fault server stands in for a hosted API
    return OpenAIBackend("test-model", base_url=base_url, api_key=CANARY_KEY, **options)  # type: ignore[arg-type]


def chain(err: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    current: BaseException | None = err
    while current is not None and current not in out:
        out.append(current)
        current = current.__cause__ or current.__context__
    return out


# ---------------------------------------------------------------------- T1, T2: Retry-After


@pytest.mark.parametrize(
    ("header", "value", "expected"), [("retry-after", "2", 2.0), ("retry-after-ms", "1500", 1.5)]
)
async def test_retry_429_waits_exactly_the_requested_retry_after(
    server: FaultServer, fake_time: FakeTime, header: str, value: str, expected: float
) -> None:
    server.script(
        Reply.error(429, "slow down", headers={header: value}), Reply.json(completion("ok"))
    )
    infos: list[RetryInfo] = []
    backend = make(server, fake_time, on_retry=infos.append)
    with capture_logs() as logs:
        result = await backend.complete(req())
    assert result.text == "ok"
    assert len(server.requests) == 2
    assert fake_time.sleeps == [expected]
    assert result.usage.requests == 2
    events = [e for e in logs if e["event"] == "retry_scheduled"]
    assert len(events) == 1
    assert (events[0]["status_code"], events[0]["attempt"], events[0]["delay"]) == (
        429,
        1,
        expected,
    )
    assert (infos[0].status_code, infos[0].retry_after, infos[0].error) == (
        429,
        expected,
        "RateLimitedError",
    )


async def test_retry_429_cool_down_holds_every_caller_of_the_backend(server: FaultServer) -> None:
    now = [0.0]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:  # time moves when the wait ends
        sleeps.append(seconds)
        await asyncio.sleep(0.05)
        now[0] += seconds

    server._clock = lambda: now[0]
    server.script(Reply.error(429, "slow down", headers={"retry-after": "2"}))
    server._default = Reply.json(completion("ok"))
    backend = OpenAIBackend(
        "m",
        base_url=server.base_url,
        api_key=CANARY_KEY,
        sleep=sleep,
        clock=lambda: now[0],
        local=False,
    )
    first = asyncio.create_task(backend.complete(req("a")))
    await wait_until(lambda: backend.limiter.cooling_for() > 0)
    others = [asyncio.create_task(backend.complete(req(f"b{i}"))) for i in range(3)]
    results = await asyncio.gather(first, *others)
    assert [r.text for r in results] == ["ok"] * 4
    assert len(server.requests) == 5
    assert server.requests[0].clock == 0.0
    assert all(r.clock is not None and r.clock >= 2.0 for r in server.requests[1:])
    assert len(sleeps) == 4 and all(s == pytest.approx(2.0) for s in sleeps)


async def test_retry_after_beyond_the_cap_fails_that_call_and_cools_down_at_most_max_wait(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.error(429, "come back later", headers={"retry-after": "99999"}))
    server._default = Reply.json(completion("back"))
    backend = make(server, fake_time)
    with pytest.raises(RateLimitedError) as info:
        await backend.complete(req())
    assert info.value.retry_after == 99999
    assert info.value.attempts == 1
    assert "asked to wait 99999 s" in str(info.value) and "max_wait=60" in str(info.value)
    assert fake_time.sleeps == []
    assert len(server.requests) == 1
    # The shared cool-down is capped like a single wait: the backend is not off for 27.8 hours.
    assert 0 < backend.limiter.cooling_for() <= 60
    again = await backend.complete(req())
    assert again.text == "back"
    assert fake_time.sleeps == [pytest.approx(60)]
    assert len(server.requests) == 2


async def test_retry_after_beyond_the_cap_never_sleeps_in_real_time(server: FaultServer) -> None:
    server.script(Reply.error(429, "later", headers={"retry-after": "3600"}))
    backend = make(server, None)
    started = time.monotonic()
    with pytest.raises(RateLimitedError):
        await asyncio.wait_for(backend.complete(req()), 5)
    assert time.monotonic() - started < 2


# ---------------------------------------------------------------------- T3, T4: status codes


async def test_retry_persistent_503_makes_exactly_the_attempt_limit(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server._default = Reply.error(503, "overloaded")
    backend = make(server, fake_time, retry=RetryPolicy(attempts=4, jitter=0))
    with pytest.raises(ProviderUnavailableError) as info:
        await backend.complete(req())
    assert len(server.requests) == 4
    assert info.value.attempts == 4 and info.value.status_code == 503
    assert isinstance(info.value.__cause__, openai.InternalServerError)
    assert "Gave up after 4 attempts" in str(info.value)
    assert {r.headers["x-stainless-retry-count"] for r in server.requests} == {"0"}
    assert fake_time.sleeps == [0.5, 1.0, 2.0]


async def test_retry_backoff_has_bounded_jitter(server: FaultServer, fake_time: FakeTime) -> None:
    server._default = Reply.error(500, "boom")
    backend = make(server, fake_time, retry=RetryPolicy(attempts=6, jitter=0.5, max_backoff=4))
    with pytest.raises(ProviderUnavailableError):
        await backend.complete(req())
    ceilings = [0.5, 1.0, 2.0, 4.0, 4.0]
    assert len(fake_time.sleeps) == 5
    for slept, ceiling in zip(fake_time.sleeps, ceilings, strict=True):
        assert ceiling * 0.5 <= slept <= ceiling


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, ProviderRequestError),
        (401, ProviderAuthError),
        (403, ProviderAuthError),
        (404, ProviderRequestError),
        (422, ProviderRequestError),
    ],
)
async def test_retry_never_repeats_a_non_retryable_4xx(
    server: FaultServer, fake_time: FakeTime, status: int, error: type[ProviderError]
) -> None:
    server._default = Reply.error(status, f"provider says no; key {CANARY_KEY}")
    with pytest.raises(error) as info:
        await make(server, fake_time).complete(req())
    assert len(server.requests) == 1
    assert fake_time.sleeps == []
    assert info.value.status_code == status
    assert "provider says no" in str(info.value)
    assert CANARY_KEY not in str(info.value)


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504])
async def test_retry_repeats_retryable_statuses(
    server: FaultServer, fake_time: FakeTime, status: int
) -> None:
    server.script(Reply.error(status, "transient"), Reply.json(completion("ok")))
    result = await make(server, fake_time).complete(req())
    assert result.text == "ok"
    assert len(server.requests) == 2


async def test_retry_obeys_x_should_retry_false(server: FaultServer, fake_time: FakeTime) -> None:
    server.script(Reply.error(503, "do not retry", headers={"x-should-retry": "false"}))
    with pytest.raises(ProviderUnavailableError):
        await make(server, fake_time).complete(req())
    assert len(server.requests) == 1


# ---------------------------------------------------------------------- T5, T6: transport


async def test_retry_connection_refused_ends_unavailable(
    no_proxy_env: None, fake_time: FakeTime
) -> None:
    infos: list[RetryInfo] = []
    backend = make(f"http://127.0.0.1:{closed_port()}/v1", fake_time, on_retry=infos.append)
    with pytest.raises(ProviderUnavailableError) as info:
        await backend.complete(req())
    assert isinstance(info.value.__cause__, openai.APIConnectionError)
    assert info.value.attempts == 4 and len(infos) == 3
    assert "connection failed" in str(info.value)


async def test_retry_connection_reset_ends_unavailable(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server._default = Reply(reset=True)
    with pytest.raises(ProviderUnavailableError) as info:
        await make(server, fake_time).complete(req())
    assert len(server.requests) == 4
    assert isinstance(info.value.__cause__, openai.APIConnectionError)


async def test_retry_hang_stops_at_the_attempt_timeout(server: FaultServer) -> None:
    server._default = Reply(hang=True)
    backend = make(
        server, None, retry=RetryPolicy(attempts=2, timeout=0.2, deadline=30, initial_backoff=0.01)
    )
    started = time.monotonic()
    with pytest.raises(ProviderTimeoutError) as info:
        await backend.complete(req())
    elapsed = time.monotonic() - started
    assert len(server.requests) == 2
    assert 0.4 <= elapsed < 1.5
    assert info.value.attempts == 2


async def test_retry_total_deadline_bounds_the_wall_time(server: FaultServer) -> None:
    server._default = Reply(hang=True)
    policy = RetryPolicy(
        attempts=50, timeout=0.2, deadline=0.5, initial_backoff=0.01, max_backoff=0.01
    )
    started = time.monotonic()
    with pytest.raises(ProviderTimeoutError) as info:
        await make(server, None, retry=policy).complete(req())
    elapsed = time.monotonic() - started
    assert elapsed <= 0.5 + 0.3
    assert 2 <= len(server.requests) <= 4
    assert "deadline" in str(info.value)


async def test_retry_stops_when_the_next_wait_would_pass_the_deadline(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server._default = Reply.error(429, "busy", headers={"retry-after": "2"})
    backend = make(server, fake_time, retry=RetryPolicy(attempts=10, deadline=5))
    with pytest.raises(RateLimitedError) as info:
        await backend.complete(req())
    assert len(server.requests) == 3
    assert fake_time.sleeps == [2.0, 2.0]
    assert "deadline of 5 s" in str(info.value)


# ---------------------------------------------------------------------- T7, T8, T9: streams


async def test_stream_cut_after_three_chunks_raises_interrupted_with_partial_text(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.stream(sse_events(["a", "b", "c", "d"]), close_after=3))
    seen = []
    with pytest.raises(StreamInterruptedError) as info:
        async for delta in make(server, fake_time).stream(req()):
            seen.append(delta)
    assert [d.text for d in seen] == ["a", "b", "c"]
    assert all(d.finish_reason is None and d.usage is None for d in seen)
    assert (info.value.partial_text, info.value.chunks) == ("abc", 3)
    assert "RemoteProtocolError" in {type(e).__name__ for e in chain(info.value)}
    assert len(server.requests) == 1


async def test_stream_reset_mid_body_raises_interrupted(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.stream(sse_events(["a", "b", "c"]), close_after=2, reset=True))
    with pytest.raises(StreamInterruptedError) as info:
        [d async for d in make(server, fake_time).stream(req())]
    assert info.value.partial_text == "ab"


async def test_stream_failure_before_the_first_chunk_is_retried(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply(reset=True), Reply.error(503), Reply.stream(sse_events(["ok"])))
    deltas = [d async for d in make(server, fake_time).stream(req())]
    assert "".join(d.text for d in deltas) == "ok"
    assert len(server.requests) == 3
    assert deltas[-1].usage is not None and deltas[-1].usage.requests == 3


async def test_stream_done_without_finish_reason_is_truncation(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.stream(sse_events(["a", "b"], finish_reason=None)))
    with pytest.raises(TruncatedOutputError) as info:
        [d async for d in make(server, fake_time).stream(req())]
    assert (info.value.partial_text, info.value.finish_reason) == ("ab", None)


@pytest.mark.parametrize(
    ("kind", "error"),
    [("server_error", ProviderUnavailableError), ("invalid_request_error", ProviderRequestError)],
)
async def test_stream_error_event_mid_stream_is_typed(
    server: FaultServer, fake_time: FakeTime, kind: str, error: type[ProviderError]
) -> None:
    events = sse_events(["a", "b"], finish_reason=None, done=False)
    events.append(
        f'event: error\ndata: {{"error": {{"message": "model overloaded", "type": "{kind}"}}}}\n\n'
    )
    server.script(Reply.stream(events))
    with pytest.raises(error) as info:
        [d async for d in make(server, fake_time).stream(req())]
    assert type(info.value) is error
    assert "model overloaded" in str(info.value)
    assert len(server.requests) == 1


async def test_stream_malformed_chunk_keeps_the_partial_text(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(
        Reply.stream(
            [*sse_events(["Hel", "lo"], finish_reason=None, done=False), "data: {broken\n\n"]
        )
    )
    got: list[str] = []
    with pytest.raises(StreamInterruptedError) as info:
        async for delta in make(server, fake_time).stream(req()):
            got.append(delta.text)
    assert got == ["Hel", "lo"]
    assert info.value.partial_text == "Hello" and info.value.chunks == 2
    assert "malformed chunk" in str(info.value)
    assert isinstance(info.value.__cause__, InvalidProviderResponseError)


async def test_stream_html_page_is_invalid_response(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(
        Reply(body=b"<html><body>502 Bad Gateway</body></html>", content_type="text/html")
    )
    with pytest.raises(InvalidProviderResponseError) as info:
        [d async for d in make(server, fake_time).stream(req())]
    assert "Bad Gateway" in info.value.excerpt
    assert len(server.requests) == 1


# ---------------------------------------------------------------------- T10, T11: bad 200 bodies


async def test_complete_html_200_is_invalid_response_with_short_excerpt(
    server: FaultServer, fake_time: FakeTime
) -> None:
    page = "<html><body><h1>Bad gateway</h1>" + "x" * 5000 + f" {CANARY_KEY}</body></html>"
    server.script(Reply(body=page.encode(), content_type="text/html"))
    with pytest.raises(InvalidProviderResponseError) as info:
        await make(server, fake_time).complete(req())
    assert "text/html" in str(info.value)
    assert "Bad gateway" in info.value.excerpt and len(info.value.excerpt) <= 500
    assert len(server.requests) == 1


async def test_complete_truncated_json_is_invalid_response(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply(body=b'{"id": "x", "choices": [{"mess'))
    with pytest.raises(InvalidProviderResponseError, match="not valid JSON") as info:
        await make(server, fake_time).complete(req())
    assert not isinstance(info.value, ValueError)
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"id": "x", "choices": []}, "no choices"),
        ({"id": "x"}, "no choices"),
        (
            {"id": "x", "choices": [{"index": 0, "message": None, "finish_reason": "stop"}]},
            "null or malformed message",
        ),
        ({"error": {"message": "backend exploded"}}, "backend exploded"),
        ([1, 2], "not a JSON object"),
    ],
)
async def test_complete_degenerate_payload_is_invalid_response(
    server: FaultServer, fake_time: FakeTime, body: object, match: str
) -> None:
    server.script(Reply.json(body))
    with pytest.raises(InvalidProviderResponseError, match=match):
        await make(server, fake_time).complete(req())


# ---------------------------------------------------------------------- T12, T13: limits, cancellation


async def test_limits_40_agents_never_exceed_max_concurrency(server: FaultServer) -> None:
    server._default = Reply.json(completion("ok"), delay=0.05)
    backend = make(server, None, max_concurrency=4)
    results = await asyncio.gather(*(backend.complete(req(f"agent {i}")) for i in range(40)))
    assert len(results) == 40 and all(r.text == "ok" for r in results)
    assert server.max_in_flight == 4
    assert backend.limiter.in_flight() == 0


async def test_limits_request_rate_is_shared_by_all_agents(server: FaultServer) -> None:
    server._default = Reply.json(completion("ok"))
    backend = make(server, None, max_concurrency=4, requests_per_second=100, burst=4)
    started = asyncio.get_running_loop().time()
    await asyncio.gather(*(backend.complete(req(f"agent {i}")) for i in range(40)))
    arrivals = sorted(r.arrived - started for r in server.requests)
    assert len(arrivals) == 40
    for k, t in enumerate(arrivals):
        assert k + 1 <= 4 + 100 * t + 1, (k, t)  # burst + rate * t, one request of slack
    assert arrivals[-1] >= 0.35


async def test_cancel_during_backoff_sends_nothing_more(server: FaultServer) -> None:
    server._default = Reply.error(503)
    backend = make(server, None, max_concurrency=1, retry=RetryPolicy(initial_backoff=30, jitter=0))
    task = asyncio.create_task(backend.complete(req()))
    await wait_until(lambda: bool(server.requests))
    await asyncio.sleep(0.05)  # now in its 30 s backoff
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)
    assert len(server.requests) == 1
    assert backend.limiter.in_flight() == 0


async def test_cancel_during_a_request_sends_nothing_more(server: FaultServer) -> None:
    server.script(Reply.error(503), Reply(hang=True))
    server._default = Reply.json(completion("should never be asked"))
    backend = make(server, None, max_concurrency=1, retry=RetryPolicy(initial_backoff=0.01))
    task = asyncio.create_task(backend.complete(req()))
    await wait_until(lambda: server.in_flight == 1 and len(server.requests) == 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)
    assert len(server.requests) == 2
    assert backend.limiter.in_flight() == 0
    assert (await backend.complete(req())).text == "should never be asked"  # the slot came back


async def test_cancel_during_a_stream_releases_its_slot(
    server: FaultServer, fake_time: FakeTime
) -> None:
    server.script(Reply.stream(sse_events(["a", "b"]), chunk_delay=10))
    backend = make(server, fake_time, max_concurrency=1)

    async def consume() -> None:
        async for _ in backend.stream(req()):
            pass

    task = asyncio.create_task(consume())
    await wait_until(lambda: server.in_flight == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert backend.limiter.in_flight() == 0
    assert len(server.requests) == 1


# ---------------------------------------------------------------------- T29: the canary key


async def test_canary_key_never_reaches_logs_events_or_errors(
    server: FaultServer,
    fake_time: FakeTime,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    infos: list[RetryInfo] = []
    server.script(
        Reply.error(401, f"Incorrect API key provided: {CANARY_KEY}"),
        Reply.error(429, f"slow down {CANARY_KEY}", headers={"retry-after": "1"}),
        Reply.json({"error": {"message": f"Bearer {CANARY_KEY} rejected"}}),
        Reply(body=f"<html>{CANARY_KEY}</html>".encode(), content_type="text/html"),
    )
    backend = make(
        server, fake_time, on_retry=infos.append, retry=RetryPolicy(attempts=2, timeout=0.2)
    )
    refused = make(f"http://127.0.0.1:{closed_port()}/v1", fake_time, retry=RetryPolicy(attempts=1))
    hanging = FaultServer(default=Reply(hang=True))
    async with hanging:
        slow = make(hanging, None, retry=RetryPolicy(attempts=1, timeout=0.1))
        with capture_logs() as logs:
            for call in (
                backend.complete(req()),
                backend.complete(req()),
                refused.complete(req()),
                slow.complete(req()),
                backend.complete(req()),
            ):
                with pytest.raises(ProviderError) as info:
                    await call
                texts += [
                    str(info.value),
                    repr(info.value),
                    "".join(traceback.format_exception(info.value)),
                ]
                texts += [getattr(info.value, "excerpt", "")]
    texts += [repr(backend), str(backend), repr(vars(backend)), repr(logs), repr(infos)]
    texts += [r.getMessage() for r in caplog.records] + [repr(r.__dict__) for r in caplog.records]
    captured = capsys.readouterr()
    texts += [captured.out, captured.err]
    assert any("retry_scheduled" == e["event"] for e in logs)
    leaks = [t for t in texts if CANARY_KEY in t]
    assert leaks == []
    # ...and yet the key was sent: the server saw it.
    assert server.requests[0].headers["authorization"] == f"Bearer {CANARY_KEY}"


async def test_canary_in_a_credential_header_is_redacted_too(
    server: FaultServer, fake_time: FakeTime
) -> None:
    secret = "azure-CANARY-5e1d0c9b"
    server.script(Reply.error(400, f"bad request with api-key {secret}"))
    backend = make(server, fake_time, default_headers={"api-key": secret})
    with pytest.raises(ProviderRequestError) as info:
        await backend.complete(req())
    assert server.requests[0].headers["api-key"] == secret
    assert secret not in str(info.value) and secret not in "".join(
        traceback.format_exception(info.value)
    )
    assert secret not in repr(backend)
