"""accord's one transport retry layer: tenacity around a provider call.

:class:`Retrier` runs an attempt function until it succeeds, a non-retryable error comes back,
the attempts run out, or the next wait would pass the total deadline. It honours a provider's
``Retry-After`` up to ``RetryPolicy.max_wait`` (beyond it the call fails at once with
``RateLimitedError(retry_after=...)``), backs off exponentially with jitter otherwise, reports
every scheduled retry (``retry_scheduled`` log event and the ``on_retry`` callback), and takes its
``sleep`` and ``clock`` as arguments so tests can assert the requested delays without waiting.

Caveat: this must stay the *only* retry layer. The SDK under it is built with ``max_retries=0``,
and callers must not wrap a backend in another transport retry loop: attempts multiply.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Generic, TypeVar

import tenacity
from pydantic import BaseModel, ConfigDict, Field

from accord._log import get_logger
from accord.errors import (
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
)

__all__ = [
    "RetryPolicy",
    "RetryInfo",
    "RetryHint",
    "Attempt",
    "Retrier",
    "Outcome",
    "default_classify",
]

log = get_logger(__name__)

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]


class RetryPolicy(BaseModel):
    """How long and how often a backend call may be retried.

    Example::

        OpenAIBackend("gpt-4o-mini", retry=RetryPolicy(attempts=6, deadline=120))
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = Field(4, ge=1)
    """Maximum number of requests per call, the first one included."""
    timeout: float = Field(60.0, gt=0)
    """Seconds one attempt may take (for a stream: until its first chunk, then between chunks)."""
    deadline: float = Field(300.0, gt=0)
    """Seconds the whole call may take: attempts, waits and queueing together."""
    max_wait: float = Field(60.0, ge=0)
    """Longest single wait. A ``Retry-After`` above it fails at once with ``RateLimitedError``."""
    initial_backoff: float = Field(0.5, ge=0)
    """First backoff when the provider gives no ``Retry-After``; doubles each attempt."""
    max_backoff: float = Field(8.0, ge=0)
    """Ceiling of the exponential backoff."""
    jitter: float = Field(0.25, ge=0, le=1)
    """Each backoff is multiplied by a random factor in ``(1 - jitter, 1]``; 0 disables jitter."""

    def backoff(self, failed_attempt: int, rand: float) -> float:
        """The wait after attempt ``failed_attempt`` (1-based) when no ``Retry-After`` was given."""
        base = min(self.initial_backoff * 2.0 ** (failed_attempt - 1), self.max_backoff)
        return min(base * (1.0 - self.jitter * rand), self.max_wait)


class RetryInfo(BaseModel):
    """What ``on_retry`` receives before each wait (also logged as ``retry_scheduled``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str
    attempt: int
    """The attempt that failed (1-based)."""
    delay: float
    """Seconds until the next attempt."""
    error: str
    """The accord error class of the failure."""
    status_code: int | None = None
    retry_after: float | None = None
    """What the provider asked for, when it did."""


@dataclass(frozen=True)
class RetryHint:
    """A classifier's verdict on one failure."""

    retryable: bool
    retry_after: float | None = None


def default_classify(err: ProviderError) -> RetryHint:
    """Retry rate limits, unavailability and timeouts; never a request, auth or content error."""
    if isinstance(err, RateLimitedError):
        return RetryHint(True, err.retry_after)
    return RetryHint(isinstance(err, ProviderUnavailableError | ProviderTimeoutError))


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """A successful call's value, the attempts it took and when its deadline passes."""

    value: T
    attempts: int
    requests: int = 0
    """Requests that reached the server (waiting for a slot or a cool-down is not one)."""
    deadline_at: float = float("inf")
    """The retrier clock's time at which the call's total deadline passes (streams use it)."""


class Attempt:
    """One try inside :meth:`Retrier.call`: its number and the time it has left."""

    __slots__ = ("number", "_call")

    def __init__(self, number: int, call: _CallState) -> None:
        self.number = number
        self._call = call

    def remaining(self) -> float:
        """Seconds left before the call's total deadline."""
        return self._call.remaining()

    def wait_budget(self) -> float:
        """The longest this attempt may wait for a cool-down or the request rate."""
        return min(self.remaining(), self._call.policy.max_wait)

    def credit(self, seconds: float) -> None:
        """Leave ``seconds`` spent queueing for this backend's own concurrency slot out of the
        deadline: waiting behind the caller's other requests is not the provider being slow."""
        if seconds > 0:
            self._call.start += seconds

    def sent(self) -> None:
        """Record that this attempt's request is going to the server (it counts as a request)."""
        self._call.sent += 1

    @asynccontextmanager
    async def timed(self) -> AsyncIterator[float]:
        """Bound the body by the attempt timeout (trimmed to the deadline); yields that timeout.

        Raises:
            ProviderTimeoutError: the body ran past it.
        """
        policy = self._call.policy
        remaining = self.remaining()
        limit = min(policy.timeout, remaining)
        if limit <= 0:
            self._call.final = True
            raise ProviderTimeoutError(
                f"{self._call.provider}: the total deadline of {policy.deadline:g} s passed before "
                f"attempt {self.number} could start. Raise RetryPolicy(deadline=...) if calls "
                "legitimately take this long.",
                provider=self._call.provider,
            )
        try:
            async with asyncio.timeout(limit):
                yield limit
        except TimeoutError as exc:
            deadline_hit = limit < policy.timeout
            self._call.final = deadline_hit
            what = (
                f"the total deadline of {policy.deadline:g} s passed"
                if deadline_hit
                else f"attempt {self.number} took longer than its timeout of {policy.timeout:g} s"
            )
            raise ProviderTimeoutError(
                f"{self._call.provider}: {what}. Raise RetryPolicy(timeout=..., deadline=...) if the "
                "provider is slow, or check that it is reachable.",
                provider=self._call.provider,
            ) from exc


class _CallState:
    __slots__ = (
        "provider",
        "policy",
        "clock",
        "start",
        "hint",
        "final",
        "over_cap",
        "number",
        "sent",
    )

    def __init__(self, provider: str, policy: RetryPolicy, clock: Clock) -> None:
        self.provider = provider
        self.policy = policy
        self.clock = clock
        self.start = clock()
        self.hint = RetryHint(False)
        self.final = False
        self.over_cap = False
        self.number = 0
        self.sent = 0

    def remaining(self) -> float:
        return self.policy.deadline - (self.clock() - self.start)


class Retrier:
    """The retry layer a backend runs its provider calls through.

    Args:
        provider: the backend's name, for messages and events.
        policy: attempts, timeouts, deadline and waits.
        classify: decides whether a failure is retryable and what the provider asked to wait.
        sleep: the sleep to wait with (inject a fake in tests); ``asyncio.sleep`` by default.
        clock: a monotonic clock in seconds (inject a fake in tests); ``time.monotonic`` by default.
        on_retry: called with a :class:`RetryInfo` before each wait.
        on_rate_limited: called with the wait after a 429, so a shared limiter can cool down.
    """

    def __init__(
        self,
        *,
        provider: str,
        policy: RetryPolicy,
        classify: Callable[[ProviderError], RetryHint] = default_classify,
        sleep: Sleep | None = None,
        clock: Clock | None = None,
        on_retry: Callable[[RetryInfo], None] | None = None,
        on_rate_limited: Callable[[float], None] | None = None,
    ) -> None:
        self.provider = provider
        self.policy = policy
        self._classify = classify
        self._sleep: Sleep = sleep or asyncio.sleep
        self.clock: Clock = clock or time.monotonic
        self._on_retry = on_retry
        self._on_rate_limited = on_rate_limited

    async def call(self, fn: Callable[[Attempt], Awaitable[T]]) -> Outcome[T]:
        """Run ``fn`` with retries.

        Args:
            fn: one attempt; it receives the :class:`Attempt` and raises accord ``ProviderError``s.

        Returns:
            The value of the first successful attempt and the number of attempts made.

        Raises:
            ProviderError: the last failure, with ``attempts`` set and the reason retries stopped.
        """
        state = _CallState(self.provider, self.policy, self.clock)

        async def attempt() -> T:
            state.number += 1
            try:
                return await fn(Attempt(state.number, state))
            except ProviderError as err:
                state.hint = self._classify(err)
                ra = state.hint.retry_after
                if isinstance(err, RateLimitedError) and ra is not None and self._on_rate_limited:
                    # Capped like a single wait: one huge Retry-After must not disable the
                    # backend for everyone; this call fails below, saying what was asked.
                    self._on_rate_limited(min(ra, self.policy.max_wait))
                if ra is not None and ra > self.policy.max_wait:
                    state.over_cap = True
                raise

        retrying = tenacity.AsyncRetrying(
            stop=lambda rs: self._stop(state, rs),
            wait=lambda rs: self._wait(state, rs),
            retry=tenacity.retry_if_exception(
                lambda exc: (
                    isinstance(exc, ProviderError)
                    and state.hint.retryable
                    and not state.final
                    and not state.over_cap
                )
            ),
            before_sleep=lambda rs: self._before_sleep(state, rs),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            value: T = await retrying(attempt)
        except ProviderError as err:
            self._finish(err, state)
            raise
        return Outcome(value, state.number, state.sent, state.start + self.policy.deadline)

    # ------------------------------------------------------------------ tenacity hooks

    def _wait(self, state: _CallState, rs: tenacity.RetryCallState) -> float:
        if state.hint.retry_after is not None:
            return max(0.0, state.hint.retry_after)
        return self.policy.backoff(rs.attempt_number, random.random())

    def _stop(self, state: _CallState, rs: tenacity.RetryCallState) -> bool:
        if rs.attempt_number >= self.policy.attempts:
            return True
        return rs.upcoming_sleep >= state.remaining()

    def _before_sleep(self, state: _CallState, rs: tenacity.RetryCallState) -> None:
        err = rs.outcome.exception() if rs.outcome else None
        if not isinstance(err, ProviderError):
            return
        delay = rs.upcoming_sleep
        if (
            isinstance(err, RateLimitedError)
            and state.hint.retry_after is None
            and self._on_rate_limited
        ):
            self._on_rate_limited(delay)
        info = RetryInfo(
            provider=self.provider,
            attempt=rs.attempt_number,
            delay=delay,
            error=type(err).__name__,
            status_code=err.status_code,
            retry_after=state.hint.retry_after,
        )
        log.info(
            "retry_scheduled",
            provider=self.provider,
            attempt=info.attempt,
            delay=round(delay, 3),
            error=info.error,
            status_code=info.status_code,
        )
        if self._on_retry is not None:
            self._on_retry(info)

    def _finish(self, err: ProviderError, state: _CallState) -> None:
        """Record the attempts on the final error and say why retrying stopped."""
        err.attempts = state.number
        if not err.args or not isinstance(err.args[0], str):
            return
        message = err.args[0]
        ra = state.hint.retry_after
        if state.over_cap and ra is not None:
            if isinstance(err, RateLimitedError):
                err.retry_after = ra
            reason = (
                f" The provider asked to wait {ra:g} s, more than max_wait={self.policy.max_wait:g} s, "
                "so accord did not wait; try later or raise RetryPolicy(max_wait=...)."
            )
        elif not state.hint.retryable or state.final:
            return
        elif state.number >= self.policy.attempts:
            reason = f" Gave up after {state.number} attempts (RetryPolicy.attempts)."
        else:
            reason = (
                f" Gave up after {state.number} attempts: the next wait would pass the total "
                f"deadline of {self.policy.deadline:g} s (RetryPolicy.deadline)."
            )
        err.args = (message + reason, *err.args[1:])
