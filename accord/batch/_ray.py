"""Batches on Ray: the tasks are spread over Ray actors that each hold the graph and its backends.

Each actor is built once (so a local model loads once per worker, not once per task) and runs up
to ``concurrency`` tasks at once on its own event loop, with the same :func:`execute` as the
embedded engine, recording into the store the batch names (opened once per actor). The driver
hands tasks to the least busy actor and gets results back as they finish. When an actor dies
(its process killed, its node lost), the driver starts a new one and gives it the dead actor's
tasks: their runs resume from the shared store, so activations that finished are not run again.

Caveat: the store must be reachable by every worker: a SQLite file works for workers on one
machine (the local instance ``ray=True`` starts); a cluster of machines needs a shared store
(PostgreSQL). A task whose actor dies three times is reported as failed.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections import deque
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from accord.batch._exec import BatchResult, execute
from accord.batch._tasks import BatchTask
from accord.errors import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from accord.batch._engine import Batch

__all__ = ["ray_results", "import_ray", "BatchWorker"]

MAX_ATTEMPTS = 3
"""How many actors a task may be given before it is reported as failed."""


def import_ray() -> Any:
    """The ``ray`` module.

    Raises:
        MissingDependencyError: Ray is not installed.
    """
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError(
            'batches on Ray need Ray: pip install "accord[ray]" (or run without --ray / ray=).',
            package="ray",
            extra="ray",
        ) from exc
    return ray


class BatchWorker:
    """A Ray actor's state: the graph, its backends and the store, built once."""

    def __init__(self, graph: Any, backend: Any, store: str | None, factory: Any = None) -> None:
        if factory is not None:
            from accord.batch._engine import built_graph

            graph, backend = built_graph(factory, backend)
        self.graph = graph
        self.backend = backend
        self.store: Any = None
        if store is not None:
            from accord.store import open_store

            self.store = open_store(store)

    def pid(self) -> int:
        return os.getpid()

    async def run(self, t: BatchTask, run_id: str, retry_failed: bool) -> BatchResult:
        return await execute(
            self.graph, t, run_id, self.backend, self.store, retry_failed=retry_failed
        )


def _store_location(store: Any) -> str | None:
    if store is None:
        return None
    if isinstance(store, str) and "://" in store:  # a URL (PostgreSQL): every worker opens it
        return store
    if isinstance(store, str | os.PathLike):
        return os.fspath(os.path.abspath(store))
    return str(store.location)


def _check_picklable(ray: Any, graph: Any) -> None:
    try:
        ray.cloudpickle.dumps(graph)
    except Exception as exc:
        raise ConfigError(
            f"graph {getattr(graph, 'name', graph)!r} cannot be sent to Ray workers "
            f"({type(exc).__name__}: {exc}). Give batch() the function that builds the graph "
            "instead, defined at the top level of a module the workers can import: each "
            "worker then builds its own graph once."
        ) from exc


def _lost(t: BatchTask, run_id: str, error: str) -> BatchResult:
    return BatchResult(
        id=t.id, task=t.task, run_id=run_id, status="failed", error=error, meta=t.meta
    )


async def ray_results(b: Batch) -> AsyncIterator[BatchResult]:
    """Run ``b``'s tasks on Ray actors, yielding results as they come back."""
    ray = import_ray()
    started_here = False
    if not ray.is_initialized():
        address = None if b.ray is True else str(b.ray)
        local = address is None and not os.environ.get("RAY_ADDRESS")
        env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": env} if local else None,
        )
        started_here = True
    remote = ray.remote(num_cpus=1, max_concurrency=b.concurrency)(BatchWorker)
    location = _store_location(b._store_arg)

    def make() -> Any:
        return remote.remote(
            None if b.graph_factory is not None else b.graph, b.backend, location, b.graph_factory
        )

    if b.graph_factory is None:
        _check_picklable(ray, b.graph)
    actors = [make() for _ in range(b.workers)]
    generation = [0] * b.workers
    load = [0] * b.workers
    queue: deque[BatchTask] = deque(b.todo)
    attempts: dict[str, int] = {}
    inflight: dict[asyncio.Future[Any], tuple[BatchTask, int, int]] = {}
    dead_errors = (ray.exceptions.RayActorError,)

    def fill() -> None:
        while queue:
            slot = min(range(b.workers), key=lambda i: load[i])
            if load[slot] >= b.concurrency:
                return
            t = queue.popleft()
            attempts[t.id] = attempts.get(t.id, 0) + 1
            if attempts[t.id] == 1 and b.on_progress is not None:
                b.on_progress(None)
            ref = actors[slot].run.remote(t, b.run_id(t.id), b.retry_failed)
            inflight[asyncio.ensure_future(ref)] = (t, slot, generation[slot])
            load[slot] += 1

    try:
        fill()
        while inflight:
            done, _ = await asyncio.wait(list(inflight), return_when=asyncio.FIRST_COMPLETED)
            for fut in done:
                t, slot, gen = inflight.pop(fut)
                if gen == generation[slot]:
                    load[slot] -= 1
                try:
                    r = fut.result()
                except dead_errors as exc:
                    if gen == generation[slot]:  # replace the dead actor once
                        generation[slot] += 1
                        load[slot] = 0
                        actors[slot] = make()
                    if attempts[t.id] >= MAX_ATTEMPTS:
                        r = _lost(t, b.run_id(t.id), f"Ray worker lost {MAX_ATTEMPTS} times: {exc}")
                    else:
                        queue.appendleft(t)
                        continue
                except Exception as exc:  # a task error Ray reports (e.g. unpicklable result)
                    r = _lost(t, b.run_id(t.id), f"{type(exc).__name__}: {exc}")
                yield r
            fill()
    finally:
        for fut in inflight:
            fut.cancel()
        for actor in actors:
            try:
                ray.kill(actor)
            except Exception:  # already dead
                pass
        if started_here:
            ray.shutdown()
