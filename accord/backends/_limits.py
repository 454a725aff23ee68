"""Concurrency and rate limits shared by every agent that uses one backend instance.

A :class:`Limiter` hands out :class:`Slot`\\ s: before a request starts it waits out a shared
cool-down (set after a 429, so one agent's rate limit pauses all of them), takes a token from an
optional requests-per-second bucket, then a place under ``max_concurrency``. A slot is released
when the request (or the whole stream) ends, also on cancellation; a token taken by a waiter that
is cancelled is given back.

Caveat: the concurrency semaphore belongs to one event loop; a backend used from several loops
(``asyncio.run`` twice) gets one semaphore per loop, while the cool-down and the rate are shared.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from accord.errors import ConfigError, ProviderTimeoutError, RateLimitedError

__all__ = ["Limiter", "Slot"]


class Slot:
    """A place under the concurrency limit; :meth:`release` is idempotent."""

    __slots__ = ("_semaphore", "queued")

    def __init__(self, semaphore: asyncio.Semaphore | None, queued: float = 0.0) -> None:
        self._semaphore = semaphore
        self.queued = queued
        """Seconds spent waiting for the concurrency place (not for cool-down or rate)."""

    def release(self) -> None:
        if self._semaphore is not None:
            self._semaphore.release()
            self._semaphore = None


class Limiter:
    """Cool-down, requests per second and in-flight requests for one backend.

    Args:
        provider: the backend's name, for error messages.
        max_concurrency: most requests in flight at once (None: no limit).
        requests_per_second: average request rate (None: no limit).
        burst: requests that may start at once before the rate applies (default: 1).
        sleep: the sleep to wait with (tests inject a fake one).
        clock: a monotonic clock in seconds (tests inject a fake one).
    """

    def __init__(
        self,
        *,
        provider: str,
        max_concurrency: int | None = None,
        requests_per_second: float | None = None,
        burst: int | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if max_concurrency is not None and max_concurrency < 1:
            raise ConfigError(f"max_concurrency must be at least 1, got {max_concurrency}.")
        if requests_per_second is not None and requests_per_second <= 0:
            raise ConfigError(f"requests_per_second must be positive, got {requests_per_second}.")
        if burst is not None and burst < 1:
            raise ConfigError(f"burst must be at least 1, got {burst}.")
        self.provider = provider
        self.max_concurrency = max_concurrency
        self.rate = requests_per_second
        self.burst = float(burst or 1)
        self._sleep = sleep or asyncio.sleep
        self._clock = clock or time.monotonic
        self._tokens = self.burst
        self._refilled = self._clock()
        self._cool_until = float("-inf")
        self._semaphores: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, asyncio.Semaphore
        ] = weakref.WeakKeyDictionary()

    # ------------------------------------------------------------------ cool-down

    def cool_down(self, seconds: float) -> None:
        """Hold every new request of this backend for ``seconds`` from now (after a 429)."""
        self._cool_until = max(self._cool_until, self._clock() + seconds)

    def cooling_for(self) -> float:
        """Seconds of cool-down left (0 when none)."""
        return max(0.0, self._cool_until - self._clock())

    # ------------------------------------------------------------------ slots

    def in_flight(self) -> int:
        """Slots held on the running loop's semaphore."""
        sem = self._semaphores.get(asyncio.get_running_loop())
        if sem is None or self.max_concurrency is None:
            return 0
        return self.max_concurrency - sem._value

    @asynccontextmanager
    async def slot(self, budget: float = float("inf")) -> AsyncIterator[None]:
        """``async with limiter.slot(budget):`` one request."""
        held = await self.acquire(budget)
        try:
            yield
        finally:
            held.release()

    def set_max_concurrency(self, value: int) -> None:
        """Set the concurrency limit (e.g. from a local server's slots); loops that already
        hold a semaphore keep theirs."""
        if value < 1:
            raise ConfigError(f"max_concurrency must be at least 1, got {value}.")
        self.max_concurrency = value

    async def acquire(
        self, budget: float = float("inf"), *, slot_budget: float | None = None
    ) -> Slot:
        """Wait for the cool-down, a rate token and a concurrency slot.

        Args:
            budget: the longest the caller may wait, in seconds.
            slot_budget: the longest it may wait for the concurrency slot (default: ``budget``);
                ``float("inf")`` queues behind this backend's other requests for as long as
                they take.

        Raises:
            RateLimitedError: the cool-down or the rate would make the caller wait past ``budget``.
            ProviderTimeoutError: no concurrency slot came free within ``budget``.
        """
        start = self._clock()
        have_token = False
        queued = 0.0
        while True:
            await self._wait_cool_down(budget - (self._clock() - start))
            if not have_token:
                await self._take_token(budget - (self._clock() - start))
                have_token = True
            semaphore = self._semaphore()
            if semaphore is not None and not semaphore.locked():
                await semaphore.acquire()  # free slot: returns at once, no timer needed
            elif semaphore is not None:
                left = budget - (self._clock() - start) if slot_budget is None else slot_budget
                began = self._clock()
                try:
                    async with asyncio.timeout(left if left != float("inf") else None):
                        await semaphore.acquire()
                    queued += self._clock() - began
                except TimeoutError as exc:
                    raise ProviderTimeoutError(
                        f"{self.provider}: no free request slot (max_concurrency="
                        f"{self.max_concurrency}) within {max(left, 0):.3g} s. Raise max_concurrency "
                        "or the deadline.",
                        provider=self.provider,
                    ) from exc
            if self.cooling_for() > 0:
                if semaphore is not None:
                    semaphore.release()
                continue
            return Slot(semaphore, queued)

    # ------------------------------------------------------------------ internals

    def _semaphore(self) -> asyncio.Semaphore | None:
        if self.max_concurrency is None:
            return None
        loop = asyncio.get_running_loop()
        sem = self._semaphores.get(loop)
        if sem is None:
            sem = self._semaphores[loop] = asyncio.Semaphore(self.max_concurrency)
        return sem

    async def _wait_cool_down(self, budget: float) -> None:
        while (wait := self.cooling_for()) > 0:
            if wait > budget:
                raise RateLimitedError(
                    f"{self.provider} is cooling down after a 429 for another {wait:.3g} s, longer "
                    f"than this call may wait ({max(budget, 0):.3g} s). Try later or raise "
                    "RetryPolicy(max_wait=..., deadline=...).",
                    provider=self.provider,
                    status_code=429,
                    retry_after=wait,
                )
            await self._sleep(wait)

    async def _take_token(self, budget: float) -> None:
        if self.rate is None:
            return
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return
        wait = -self._tokens / self.rate
        if wait > budget:
            self._tokens += 1.0
            raise RateLimitedError(
                f"{self.provider}: requests_per_second={self.rate:g} would make this call wait "
                f"{wait:.3g} s, longer than it may ({max(budget, 0):.3g} s).",
                provider=self.provider,
                retry_after=wait,
            )
        try:
            await self._sleep(wait)
        except BaseException:
            self._tokens += 1.0
            raise
