"""The request queue that turns concurrent calls into batched ``generate()`` calls.

Policy. A call enqueues a :class:`Pending` request and awaits it. A worker task (one per event
loop, alive only while there is work) waits until the oldest request has waited ``max_wait``
seconds or ``max_batch_size`` rows are queued, then takes the oldest request and every queued
request *compatible* with it (same :class:`~accord.backends._hf_generate.Sampling`: greedy, or
the same temperature and top-p), up to ``max_batch_size`` rows, and runs them as one
``generate()`` in the backend's single worker thread. Requests with other settings stay queued
for the next call (where later arrivals may join them). Different ``max_tokens`` and stop strings
share a call: each row stops on its own. Seeded sampling requests share calls with each other
(any temperature, top-p and seed): every row then draws from its own generator, so a seed gives
the same text however the requests arrived (see :mod:`accord.backends._hf_sample`). A backend may
set its own grouping (``Pending.group``): the cooperative decoders batch every request.

Cancellation: a caller that goes away before its batch starts is dropped from it; one that goes
away during the batch has its row stopped at the next token, and the other rows carry on.
Caveat: the worker thread is shared with every other model operation of the backend (loading,
logits), so a long batch delays them; a model never runs two forward passes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from dataclasses import dataclass, field

from accord._log import get_logger
from accord.backends._hf_generate import Sampling, StreamSink
from accord.backends.base import Completion, Request

__all__ = ["Pending", "Batcher", "HFStats", "Outcome"]

log = get_logger(__name__)

Outcome = Completion | BaseException | None
"""What running a request gives: its completion, its error, or None when it was cancelled."""


@dataclass
class HFStats:
    """Counters of a backend's generation work (read them; do not write them)."""

    requests: int = 0
    """Requests that reached a ``generate()`` call."""
    batches: int = 0
    """``generate()`` calls made (each one batched forward pass per new token)."""
    rows: int = 0
    """Sequences generated (a request with ``n`` samples is ``n`` rows)."""
    max_rows: int = 0
    """Largest number of rows in one ``generate()`` call."""
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(eq=False)
class Pending:
    """One queued request and the way back to its caller."""

    request: Request
    sampling: Sampling
    max_new: int
    stops: tuple[str, ...]
    enqueued_at: float
    future: asyncio.Future[Completion] | None = None
    """Resolved with the result (``complete``)."""
    queue: asyncio.Queue[object] | None = None
    """Receives text pieces, then the result (``stream``)."""
    sink: StreamSink | None = None
    cancelled: bool = False
    group: Hashable | None = None
    """Requests with equal groups may share a batch; None keeps the sampling-based policy."""
    key: Hashable = field(init=False)

    def __post_init__(self) -> None:
        self.key = self.sampling if self.group is None else self.group

    @property
    def rows(self) -> int:
        """Rows it takes in a batch: one when greedy (copies are identical), else ``n``."""
        return self.request.n if self.sampling.do_sample else 1

    def is_cancelled(self) -> bool:
        return self.cancelled or (self.future is not None and self.future.cancelled())

    def deliver(self, outcome: Outcome) -> None:
        """Hand the outcome to the caller (on the event loop)."""
        if outcome is None:
            outcome = asyncio.CancelledError()
        if self.queue is not None:
            self.queue.put_nowait(outcome)
        elif self.future is not None and not self.future.done():
            if isinstance(outcome, BaseException):
                self.future.set_exception(outcome)
            else:
                self.future.set_result(outcome)


Runner = Callable[[list[Pending]], list[Outcome]]


class Batcher:
    """The queue and worker task of one backend on one event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        executor: Executor,
        runner: Runner,
        *,
        max_batch_size: int,
        max_wait: float,
    ) -> None:
        self.loop = loop
        self.executor = executor
        self.runner = runner
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self.pending: deque[Pending] = deque()
        self._enough = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def submit(self, item: Pending) -> None:
        """Queue ``item`` and make sure a worker is running."""
        self.pending.append(item)
        if sum(p.rows for p in self.pending) >= self.max_batch_size:
            self._enough.set()
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._work(), name="accord-hf-batcher")

    def _drop_cancelled(self) -> None:
        if any(p.is_cancelled() for p in self.pending):
            kept = [p for p in self.pending if not p.is_cancelled()]
            for p in self.pending:
                if p.is_cancelled():
                    p.deliver(None)
            self.pending = deque(kept)

    async def _gather(self) -> None:
        """Wait until the oldest request has waited ``max_wait`` or a batch is full."""
        self._drop_cancelled()
        if not self.pending or sum(p.rows for p in self.pending) >= self.max_batch_size:
            return
        delay = self.pending[0].enqueued_at + self.max_wait - self.loop.time()
        if delay <= 0:
            return
        self._enough.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._enough.wait()
        self._drop_cancelled()

    def _take(self) -> list[Pending]:
        first = self.pending.popleft()
        taken, rows, kept = [first], first.rows, deque[Pending]()
        while self.pending:
            item = self.pending.popleft()
            if item.key == first.key and rows + item.rows <= self.max_batch_size:
                taken.append(item)
                rows += item.rows
            else:
                kept.append(item)
        self.pending = kept
        return taken

    async def _work(self) -> None:
        batch: list[Pending] = []
        try:
            while True:
                await self._gather()
                if not self.pending:
                    return
                batch = self._take()
                try:
                    outcomes = await self.loop.run_in_executor(self.executor, self.runner, batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the runner reports per request; this is a bug guard
                    outcomes = [exc] * len(batch)
                for item, outcome in zip(batch, outcomes, strict=True):
                    item.deliver(outcome)
                if log.debug_enabled():
                    log.debug(
                        "hf_batch_finished", requests=len(batch), rows=sum(p.rows for p in batch)
                    )
                batch = []
        finally:
            for item in [*batch, *self.pending]:
                item.cancelled = True
                item.deliver(None)
            self.pending.clear()
