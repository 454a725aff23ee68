"""The retry layer and the shared limiter on their own, with a fake clock."""

from __future__ import annotations

import asyncio

import pytest
from fault_server import FakeTime, wait_until
from pydantic import ValidationError

from accord.backends._limits import Limiter
from accord.backends._retry import Attempt, Retrier, RetryInfo, RetryPolicy
from accord.errors import (
    ConfigError,
    ProviderAuthError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
)

# ---------------------------------------------------------------------- Limiter


async def test_limiter_rate_allows_burst_then_the_rate(fake_time: FakeTime) -> None:
    limiter = Limiter(
        provider="p", requests_per_second=10, burst=4, sleep=fake_time.sleep, clock=fake_time.clock
    )
    start = fake_time.now
    starts = []
    for _ in range(12):
        async with limiter.slot():
            starts.append(fake_time.now - start)
    assert starts[:4] == [0.0] * 4
    for k, t in enumerate(starts):
        assert k + 1 <= 4 + 10 * t + 1e-9  # never more than burst + rate * t started by t
    assert starts[-1] == pytest.approx(0.8)


async def test_limiter_cancelled_rate_waiter_gives_its_token_back() -> None:
    limiter = Limiter(provider="p", requests_per_second=1, burst=1)
    async with limiter.slot():
        pass
    waiter = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.01)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter._tokens == pytest.approx(0.0, abs=0.05)


async def test_limiter_concurrency_slot_is_released_on_cancellation() -> None:
    limiter = Limiter(provider="p", max_concurrency=2)
    entered = asyncio.Event()

    async def hold() -> None:
        async with limiter.slot():
            entered.set()
            await asyncio.sleep(3600)

    holders = [asyncio.create_task(hold()) for _ in range(2)]
    await entered.wait()
    await wait_until(lambda: limiter.in_flight() == 2)
    queued = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(0.01)
    assert not queued.done()
    for task in (*holders, queued):
        task.cancel()
    await asyncio.gather(*holders, queued, return_exceptions=True)
    assert limiter.in_flight() == 0


async def test_limiter_slot_wait_beyond_budget_is_a_timeout() -> None:
    limiter = Limiter(provider="p", max_concurrency=1)
    held = await limiter.acquire()
    with pytest.raises(ProviderTimeoutError, match="max_concurrency=1"):
        await limiter.acquire(budget=0.05)
    held.release()
    held.release()  # idempotent
    assert limiter.in_flight() == 0


async def test_limiter_cool_down_holds_then_releases_callers(fake_time: FakeTime) -> None:
    limiter = Limiter(provider="p", sleep=fake_time.sleep, clock=fake_time.clock)
    limiter.cool_down(5)
    with pytest.raises(RateLimitedError) as info:
        await limiter.acquire(budget=1)
    assert info.value.retry_after == pytest.approx(5)
    async with limiter.slot(budget=10):
        pass
    assert fake_time.sleeps == [5]


def test_limiter_rejects_nonsense_limits() -> None:
    for kw in ({"max_concurrency": 0}, {"requests_per_second": 0}, {"burst": 0}):
        with pytest.raises(ConfigError):
            Limiter(provider="p", **kw)  # type: ignore[arg-type]


# ---------------------------------------------------------------------- Retrier


def retrier(fake_time: FakeTime, **policy: float) -> tuple[Retrier, list[RetryInfo]]:
    infos: list[RetryInfo] = []
    r = Retrier(
        provider="p",
        policy=RetryPolicy(jitter=0, **policy),  # type: ignore[arg-type]
        sleep=fake_time.sleep,
        clock=fake_time.clock,
        on_retry=infos.append,
    )
    return r, infos


async def test_retrier_returns_the_value_and_the_attempts(fake_time: FakeTime) -> None:
    r, infos = retrier(fake_time)
    failures = [ProviderUnavailableError("down", status_code=502)]

    async def fn(attempt: Attempt) -> str:
        if failures:
            raise failures.pop()
        return f"ok on {attempt.number}"

    outcome = await r.call(fn)
    assert (outcome.value, outcome.attempts) == ("ok on 2", 2)
    assert [(i.attempt, i.delay, i.status_code) for i in infos] == [(1, 0.5, 502)]


async def test_retrier_never_retries_auth_errors(fake_time: FakeTime) -> None:
    r, infos = retrier(fake_time)
    calls = 0

    async def fn(attempt: Attempt) -> str:
        nonlocal calls
        calls += 1
        raise ProviderAuthError("no", status_code=401)

    with pytest.raises(ProviderAuthError) as info:
        await r.call(fn)
    assert (calls, info.value.attempts, infos) == (1, 1, [])


async def test_retrier_lets_programming_errors_through_unretried(fake_time: FakeTime) -> None:
    r, _ = retrier(fake_time)
    calls = 0

    async def fn(attempt: Attempt) -> str:
        nonlocal calls
        calls += 1
        raise KeyError("bug")

    with pytest.raises(KeyError):
        await r.call(fn)
    assert calls == 1


async def test_retrier_attempt_timeout_is_trimmed_to_the_deadline(fake_time: FakeTime) -> None:
    r, _ = retrier(fake_time, timeout=50, deadline=20)
    seen = []

    async def fn(attempt: Attempt) -> str:
        async with attempt.timed() as timeout:
            seen.append(timeout)
        fake_time.now += 15
        raise ProviderUnavailableError("down")

    with pytest.raises(ProviderUnavailableError, match="deadline of 20 s"):
        await r.call(fn)
    assert seen == [20, 4.5]  # the second attempt only gets what is left of the deadline


def test_retry_policy_validates_its_fields() -> None:
    with pytest.raises(ValidationError):
        RetryPolicy(attempts=0)
    assert RetryPolicy(jitter=0).backoff(10, 0.0) == 8.0
    assert RetryPolicy(jitter=0, max_wait=3).backoff(10, 0.0) == 3.0
