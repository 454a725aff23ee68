"""``accord.batch``: run a graph over many tasks, as an async iterator of results.

The embedded engine runs the tasks in this process on its event loop, ``concurrency`` at a time,
all through the same graph and backends (so a local model's batching and a server backend's
concurrency limit apply across the whole batch). With ``ray=True`` (a local Ray instance) or
``ray="ADDRESS"`` (a cluster) the tasks go to Ray actors instead (see :mod:`accord.batch._ray`).

With a store, each task's run is recorded under a run id derived from the batch id and the task
id; running the same batch again therefore skips finished runs (their recorded result comes back
without a model call), resumes interrupted ones and, with ``retry_failed``, retries failed ones.

Caveat: results arrive in the order runs finish, not the order of the tasks; match them by
``result.id``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from accord.batch._exec import BatchResult, execute
from accord.batch._tasks import BatchTask, batch_id_for, parse_tasks, run_id_for
from accord.errors import ConfigError
from accord.messages import Usage

__all__ = ["Batch", "BatchSummary", "batch"]

Hook = Callable[[BatchResult | None], None]
"""Progress hook: called with None when a task starts and with its result when it ends."""


@dataclass(slots=True)
class BatchSummary:
    """Counts of a batch so far (final once iteration ends)."""

    batch_id: str
    total: int
    completed: int = 0
    stopped: int = 0
    failed: int = 0
    skipped: int = 0
    """Tasks not run because the caller had their results already (``skip=``)."""
    resumed: int = 0
    """Tasks whose run was already in the store (resumed, or read back when finished)."""
    usage: Usage = field(default_factory=Usage)
    duration_s: float = 0.0

    def add(self, r: BatchResult) -> None:
        if r.status == "completed":
            self.completed += 1
        elif r.status == "stopped":
            self.stopped += 1
        else:
            self.failed += 1
        self.resumed += int(r.resumed)
        self.usage = self.usage + r.usage


class Batch:
    """A batch of runs: ``async for result in batch`` yields each result as its run finishes;
    ``batch.summary`` holds the counts (final when the loop ends)."""

    def __init__(
        self,
        graph: Any,
        tasks: Iterable[Any],
        backend: Any = None,
        *,
        store: Any = None,
        concurrency: int = 8,
        batch_id: str | None = None,
        retry_failed: bool = False,
        skip: Iterable[str] = (),
        ray: bool | str | None = None,
        workers: int = 2,
        on_progress: Hook | None = None,
        graph_factory: Callable[[], Any] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ConfigError(f"concurrency must be 1 or more, not {concurrency}.")
        if workers < 1:
            raise ConfigError(f"workers must be 1 or more, not {workers}.")
        from accord.graphs import Graph

        if graph_factory is None and callable(graph) and not isinstance(graph, Graph):
            graph_factory, graph = graph, None
        if graph is None and graph_factory is None:
            raise ConfigError("batch() needs a graph, or a function that builds one.")
        self.graph = graph
        self.tasks: list[BatchTask] = parse_tasks(tasks)
        self.backend = backend
        self.concurrency = concurrency
        self.retry_failed = retry_failed
        self.ray = ray
        self.workers = workers
        self.on_progress = on_progress
        self.graph_factory = graph_factory
        name = graph.name if isinstance(graph, Graph) else _factory_name(graph_factory)
        self.batch_id = batch_id or batch_id_for(name, self.tasks)
        self._store_arg = store
        skip_ids = set(skip)
        self.todo = [t for t in self.tasks if t.id not in skip_ids]
        self.summary = BatchSummary(
            self.batch_id, len(self.tasks), skipped=len(self.tasks) - len(self.todo)
        )

    def run_id(self, task_id: str) -> str:
        """The run id of a task of this batch."""
        return run_id_for(self.batch_id, task_id)

    def __aiter__(self) -> AsyncIterator[BatchResult]:
        return self._results()

    async def _results(self) -> AsyncIterator[BatchResult]:
        started = time.perf_counter()
        try:
            if self.ray is not None and self.ray is not False:
                from accord.batch._ray import ray_results

                source = ray_results(self)
            else:
                source = self._embedded()
            async for r in source:
                self.summary.add(r)
                self.summary.duration_s = time.perf_counter() - started
                if self.on_progress is not None:
                    self.on_progress(r)
                yield r
        finally:
            self.summary.duration_s = time.perf_counter() - started

    def _open_store(self) -> tuple[Any, bool]:
        """The store object, and whether this batch opened it (and so closes it)."""
        s = self._store_arg
        if s is None or not isinstance(s, str) and hasattr(s, "has_run"):
            return s, False
        from accord.store import open_store

        return open_store(s), True

    def build(self) -> tuple[Any, Any]:
        """The graph and the default backend (building them with the factory if needed)."""
        if self.graph is not None:
            return self.graph, self.backend
        return built_graph(self.graph_factory, self.backend)

    async def _embedded(self) -> AsyncIterator[BatchResult]:
        graph, backend = self.build()
        store, owned = self._open_store()
        queue: asyncio.Queue[BatchResult] = asyncio.Queue()
        pending = iter(self.todo)

        async def worker() -> None:
            for t in pending:  # one shared iterator: each task is taken once
                if self.on_progress is not None:
                    self.on_progress(None)
                r = await execute(
                    graph,
                    t,
                    self.run_id(t.id),
                    backend,
                    store,
                    retry_failed=self.retry_failed,
                )
                queue.put_nowait(r)

        n = min(self.concurrency, len(self.todo))
        workers = [asyncio.create_task(worker()) for _ in range(n)]
        try:
            for _ in range(len(self.todo)):
                get = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait([get, *workers], return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    for w in done:  # a worker raised (cancelled from outside, or a bug)
                        if w.exception() is not None:
                            raise w.exception()  # type: ignore[misc]
                    r = await queue.get()
                else:
                    r = get.result()
                yield r
        finally:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            if owned:
                store.close()


def _factory_name(factory: Any) -> str:
    return f"{getattr(factory, '__module__', '')}.{getattr(factory, '__qualname__', 'graph')}"


def built_graph(factory: Any, backend: Any) -> tuple[Any, Any]:
    """What ``factory()`` builds: a graph, or a (graph, backend) pair; and the backend to use.

    Raises:
        ConfigError: the factory built something else.
    """
    from accord.graphs import Graph

    built = factory()
    if isinstance(built, tuple) and len(built) == 2 and isinstance(built[0], Graph):
        return built[0], built[1] if built[1] is not None else backend
    if not isinstance(built, Graph):
        raise ConfigError(
            f"the function given to batch() returned a {type(built).__name__}, not an accord.Graph."
        )
    return built, backend


def batch(
    graph: Any,
    tasks: Iterable[Any],
    backend: Any = None,
    *,
    store: Any = None,
    concurrency: int = 8,
    batch_id: str | None = None,
    retry_failed: bool = False,
    skip: Iterable[str] = (),
    ray: bool | str | None = None,
    workers: int = 2,
    on_progress: Hook | None = None,
) -> Batch:
    """Run ``graph`` on each of ``tasks``; iterate the returned batch for results as they finish.

    Example::

        b = accord.batch(graph, ["2+2?", {"id": "q2", "task": "3*3?"}], store="runs.db")
        async for result in b:
            print(result.id, result.status, result.output)
        print(b.summary)

    Args:
        graph: the graph to run (the same object, and so the same backends, for every task), or
            a function of no arguments that builds it. On Ray, give the function (importable
            by the workers, e.g. defined at a module's top level): each worker calls it once,
            so a local model loads once per worker.
        tasks: strings, or dicts with ``task`` and optionally ``id``, ``max_steps``, ``meta``.
        backend: the default backend for agents that have none.
        store: a run store (``accord.open_store(path)``) or a path: records each run, which makes
            the batch resumable. Default: nothing is recorded and nothing is resumed.
        concurrency: runs in flight at once (per Ray worker with ``ray``).
        batch_id: the batch's id (default: a digest of the graph's name and the tasks), from
            which each task's run id is derived.
        retry_failed: resume runs the store holds as failed (default: report them as failed).
        skip: ids of tasks not to run (the caller has their results).
        ray: ``True`` starts a local Ray instance (or uses the one already started);
            ``"ADDRESS"`` joins a cluster. Needs ``pip install "accord[ray]"``.
        workers: Ray actors (each holds the graph and its backends).
        on_progress: called with None when a task starts, and with its result when it ends.

    Raises:
        ConfigError: a task that is not valid (naming it), or a bad option.
        MissingDependencyError: ``ray`` without Ray installed.
    """
    return Batch(
        graph,
        tasks,
        backend,
        store=store,
        concurrency=concurrency,
        batch_id=batch_id,
        retry_failed=retry_failed,
        skip=skip,
        ray=ray,
        workers=workers,
        on_progress=on_progress,
    )
