"""The runs the server executes: a limit on how many at once, their live events, cancellation.

Each run is an asyncio task that calls ``graph.run`` with the server's run store, so a finished
run survives a restart. While a run lives (and for a while after it ends) its events are kept in
memory, numbered from 1, for ``GET /v1/runs/{id}/events`` and for streaming chat completions.

Caveat: event numbers are those of this process; after a restart a run's events come from the
store, which keeps no ``token`` or ``message`` events, and are numbered by their position there.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from accord import _otel
from accord._log import get_logger
from accord.runtime.result import RunResult

__all__ = ["LiveRun", "RunManager", "Busy", "Closing"]

log = get_logger(__name__)


class Busy(Exception):
    """The concurrent-run limit is reached (the server answers 429)."""


class Closing(Exception):
    """The server is shutting down and starts no new runs (it answers 503)."""


@dataclass(eq=False)
class LiveRun:
    """One run this server started."""

    run_id: str
    graph: Any
    task: str
    started_at: float = field(default_factory=time.time)
    events: list[Any] = field(default_factory=list)
    result: RunResult | None = None
    error: BaseException | None = None
    runner: asyncio.Task[None] | None = None
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def done(self) -> bool:
        return self.runner is not None and self.runner.done()

    @property
    def status(self) -> str:
        if self.result is not None:
            return self.result.status
        if not self.done:
            return "running"
        if isinstance(self.error, TimeoutError):
            return "cancelled"
        if self.error is None or isinstance(self.error, asyncio.CancelledError):
            return "cancelled"
        return "failed"

    def add(self, event: Any) -> None:
        """The run's event sink: keep the event and wake whoever follows the run."""
        self.events.append(event)
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    def _ended(self) -> None:
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()

    async def follow(self, after: int = 0) -> Any:
        """Yield ``(number, event)`` for events numbered above ``after``, until the run ends."""
        index = after
        while True:
            wake = self._wake
            while index < len(self.events):
                index += 1
                yield index, self.events[index - 1]
            if self.done:
                return
            await wake.wait()

    async def cancel(self, wait: float = 5.0) -> None:
        """Cancel the run (its in-flight model calls too) and wait for it to end."""
        runner = self.runner
        if runner is None or runner.done():
            return
        runner.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(asyncio.shield(runner), wait)


class RunManager:
    """Starts runs, enforces the concurrent-run limit, and cancels or drains them at shutdown.

    Args:
        backend: the default backend for agents that have none.
        record: keyword arguments for ``graph.run`` that record the run in the store.
        max_runs: runs allowed at once; one more is refused with :class:`Busy`.
        keep: finished runs whose events stay in memory.
    """

    def __init__(
        self, backend: Any, record: dict[str, Any], *, max_runs: int, keep: int = 256
    ) -> None:
        self.backend = backend
        self.record = record
        self.max_runs = max_runs
        self.keep = keep
        self.active: dict[str, LiveRun] = {}
        self.finished: OrderedDict[str, LiveRun] = OrderedDict()
        self.closing = False
        self.started = 0

    def get(self, run_id: str) -> LiveRun | None:
        return self.active.get(run_id) or self.finished.get(run_id)

    def start(
        self, graph: Any, task: str, *, tokens: bool, timeout: float | None = None
    ) -> LiveRun:
        """Start ``graph`` on ``task`` as a new recorded run.

        Raises:
            Busy: ``max_runs`` runs are already going.
            Closing: the server is shutting down.
        """
        return self._launch(LiveRun(os.urandom(8).hex(), graph, task), tokens, timeout, False)

    def resume(self, graph: Any, run_id: str, *, tokens: bool) -> LiveRun:
        """Continue run ``run_id`` from the store (a waiting run whose answers were recorded).

        Raises:
            Busy: ``max_runs`` runs are already going.
            Closing: the server is shutting down.
        """
        return self._launch(LiveRun(run_id, graph, ""), tokens, None, True)

    def _launch(self, run: LiveRun, tokens: bool, timeout: float | None, resume: bool) -> LiveRun:
        if self.closing:
            raise Closing()
        if len(self.active) >= self.max_runs:
            raise Busy()
        self.active[run.run_id] = run
        self.started += 1
        run.runner = asyncio.create_task(
            self._execute(run, tokens, timeout, resume), name=run.run_id
        )
        return run

    async def _execute(
        self, run: LiveRun, tokens: bool, limit_s: float | None, resume: bool = False
    ) -> None:
        try:
            async with asyncio.timeout(limit_s):
                if resume:
                    run.result = await run.graph.resume(
                        run.run_id,
                        self.backend,
                        on_event=run.add,
                        stream_tokens=tokens,
                        **self.record,
                    )
                else:
                    run.result = await run.graph.run(
                        run.task,
                        self.backend,
                        run_id=run.run_id,
                        on_event=run.add,
                        stream_tokens=tokens,
                        **self.record,
                    )
        except asyncio.CancelledError as exc:
            run.error = exc
            raise
        except BaseException as exc:  # kept for the client; the server goes on
            run.error = exc
            log.info("serve_run_failed", run_id=run.run_id, error=type(exc).__name__)
            tracer = _otel.TRACER
            if tracer is not None:  # a UsageError ends a run without run_finished
                tracer.abandon(run.run_id, exc)
        finally:
            self.active.pop(run.run_id, None)
            self.finished[run.run_id] = run
            while len(self.finished) > self.keep:
                self.finished.popitem(last=False)
            run._ended()

    async def shutdown(self, grace: float) -> None:
        """Start no more runs; wait up to ``grace`` seconds for running ones, then cancel them.

        A cancelled run keeps its finished activations in the store: ``accord runs resume ID``
        (or ``graph.resume``) finishes it later.
        """
        self.closing = True
        runners = [r.runner for r in self.active.values() if r.runner is not None]
        if runners:
            _, pending = await asyncio.wait(runners, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
                log.warning("serve_runs_cancelled_at_shutdown", runs=len(pending))
        # uvicorn re-raises SIGTERM after shutdown, so no atexit hook runs: make what the runs
        # recorded ("async" durability) durable now.
        from accord.store import flush_all

        await asyncio.to_thread(flush_all)
