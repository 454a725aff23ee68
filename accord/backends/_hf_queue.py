"""The async front of a locally batched backend: enqueue a request, await or stream its result.

:class:`QueuedBackend` holds what :class:`~accord.backends.hf.HFBackend` and the cooperative
decoding backends (:mod:`accord.decoding`) share: a request becomes a
:class:`~accord.backends._hf_batch.Pending` item in the :class:`~accord.backends._hf_batch.Batcher`
of the running event loop, ``complete`` awaits its future, ``stream`` reads its queue. A subclass
gives ``_run_batch(items) -> outcomes`` (blocking, run in ``_executor``) and may override
``_group`` to say which requests can share a batch. Caveat: the batch runner runs in the
backend's own executor, never on the event loop.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator, Hashable
from concurrent.futures import Executor

from accord.backends import _guard
from accord.backends._hf_batch import Batcher, Outcome, Pending
from accord.backends._hf_generate import Sampling, StreamSink
from accord.backends._hf_run import sampling_of
from accord.backends.base import Completion, Delta, Request
from accord.errors import ConfigError

__all__ = ["QueuedBackend"]


class QueuedBackend:
    """Mixin: batched ``complete`` and ``stream`` over a blocking ``_run_batch``."""

    name: str
    max_batch_size: int
    max_wait_ms: float
    max_new_tokens: int
    _executor: Executor
    _batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Batcher]

    def _run_batch(self, items: list[Pending]) -> list[Outcome]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _group(self, sampling: Sampling) -> Hashable | None:
        """Requests with equal groups may share a batch (None: the default policy)."""
        return None

    def _enqueue(self, request: Request, *, streaming: bool) -> Pending:
        sampling = sampling_of(request)
        _guard.check_real_call_allowed(self.name)
        loop = asyncio.get_running_loop()
        item = Pending(
            request=request,
            sampling=sampling,
            max_new=request.max_tokens or self.max_new_tokens,
            stops=tuple(s for s in request.stop if s),
            enqueued_at=loop.time(),
            group=self._group(sampling),
        )
        if streaming:
            queue: asyncio.Queue[object] = asyncio.Queue()
            item.queue = queue

            def push(text: str) -> None:
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, text)
                except RuntimeError:  # the loop closed under us: stop this row
                    item.cancelled = True

            item.sink = StreamSink(push=push)
        else:
            item.future = loop.create_future()
        batcher = self._batchers.get(loop)
        if batcher is None:
            batcher = self._batchers[loop] = Batcher(
                loop,
                self._executor,
                self._run_batch,
                max_batch_size=self.max_batch_size,
                max_wait=self.max_wait_ms / 1000,
            )
        batcher.submit(item)
        return item

    async def complete(self, request: Request) -> Completion:
        """Generate a completion; joins a batch with concurrent compatible requests.

        Raises:
            ConfigError: invalid sampling options, or a model that cannot be loaded.
        """
        started = time.perf_counter()
        item = self._enqueue(request, streaming=False)
        assert item.future is not None
        try:
            completion = await item.future
        except asyncio.CancelledError:
            item.cancelled = True
            raise
        return completion.model_copy(update={"latency_s": time.perf_counter() - started})

    async def stream(self, request: Request) -> AsyncIterator[Delta]:
        """Generate chunk by chunk; the last :class:`Delta` carries ``finish_reason`` and usage.

        Streams join batches like ``complete`` does. Text that could still turn into a stop
        string is held back until it cannot.

        Raises:
            ConfigError: ``n`` > 1 (stream one candidate; use ``complete`` for several), or
                invalid options.
        """
        if request.n != 1:
            raise ConfigError(
                f"stream() gives one candidate, but the request asks for n={request.n}. "
                "Use complete() for several candidates."
            )
        item = self._enqueue(request, streaming=True)
        assert item.queue is not None and item.sink is not None
        try:
            while True:
                got = await item.queue.get()
                if isinstance(got, str):
                    yield Delta(text=got)
                elif isinstance(got, BaseException):
                    raise got
                elif isinstance(got, Completion):
                    final = got.choices[0].text
                    emitted = item.sink.emitted
                    rest = final[len(emitted) :] if final.startswith(emitted) else ""
                    if rest:
                        yield Delta(text=rest)
                    yield Delta(finish_reason=got.choices[0].finish_reason, usage=got.usage)
                    return
        finally:
            item.cancelled = True
