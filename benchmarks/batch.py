"""Batch throughput: 1,000 tasks through a 3-agent chain on a FunctionBackend with 20 ms latency.

Runs the same batch on the embedded asyncio engine and on a local Ray instance with 2 workers,
each without a store and recording into SQLite (or into ``--store URL``, e.g. a PostgreSQL
store once ``accord.open_store`` accepts its URL). Prints wall time, runs/s, the per-run
overhead over the model latency (a run's mean duration minus its 3 x 20 ms of model calls, and
the wall time over the ideal ``tasks / concurrency x 60 ms``, times the concurrency, per run),
when the first result came (on Ray: the workers' start-up) and the rate after it, and the
driver's peak RSS.

    python benchmarks/batch.py [--tasks 1000] [--concurrency 64] [--store URL] [--no-ray]

Caveat: every configuration has the same total concurrency (on Ray split over the workers);
Ray's start-up time is reported apart from the batch's wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import accord
from accord.backends.base import Request
from accord.testing import FunctionBackend

LATENCY_S = 0.020


async def _model(request: Request) -> str:
    await asyncio.sleep(LATENCY_S)
    return f"{request.agent} says {len(request.messages)}"


def build() -> accord.Graph:
    """The benchmark's graph: three agents in a row on one FunctionBackend."""
    backend = FunctionBackend(_model)
    g = accord.Graph("bench3")
    a, b, c = (accord.Agent(n, backend=backend) for n in ("a", "b", "c"))
    g.add(a, b, c)
    g.connect(a, b).connect(b, c)
    return g


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _one(label: str, tasks: list[str], concurrency: int, store: Any, ray: bool) -> None:
    workers = 2
    per = max(1, concurrency // workers) if ray else concurrency
    b = accord.batch(build, tasks, store=store, concurrency=per, ray=ray, workers=workers)
    t0 = time.perf_counter()
    results = []
    first = 0.0
    async for r in b:
        if not results:
            first = time.perf_counter() - t0
        results.append(r)
    wall = time.perf_counter() - t0
    steady = (len(results) - 1) / max(wall - first, 1e-9)
    ok = sum(r.ok for r in results)
    assert ok == len(tasks), f"{label}: {len(tasks) - ok} runs failed"
    mean_run = statistics.mean(r.duration_s for r in results)
    total = per * (workers if ray else 1)
    ideal = len(tasks) / total * 3 * LATENCY_S
    print(
        f"{label:<24} wall {wall:6.2f}s  {len(tasks) / wall:7.1f} runs/s  "
        f"first result {first:5.2f}s  after it {steady:7.1f} runs/s  "
        f"run overhead {1000 * (mean_run - 3 * LATENCY_S):6.1f} ms  "
        f"wall over ideal {1000 * (wall - ideal) * total / len(tasks):6.1f} ms/run  "
        f"driver RSS {_rss_mb():6.0f} MB",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--store", default=None, help="a store URL or path (default: SQLite)")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    tasks = [f"task {i}" for i in range(args.tasks)]
    folder = Path(tempfile.mkdtemp(prefix="accord-batch-bench-"))
    try:
        print(
            f"{args.tasks} tasks, 3 agents x {LATENCY_S * 1000:.0f} ms, concurrency {args.concurrency}"
        )
        await _one("asyncio, no store", tasks, args.concurrency, None, False)
        await _one("asyncio, store", tasks, args.concurrency, args.store or folder / "a.db", False)
        if args.no_ray:
            return
        import ray

        t0 = time.perf_counter()
        import os
        import sys

        env = {"PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # this checkout's accord
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": env},
        )
        print(f"ray.init (local, 2 CPUs): {time.perf_counter() - t0:.1f}s", flush=True)
        try:
            await _one("ray 2 workers, no store", tasks, args.concurrency, None, True)
            store = args.store or str(folder / "r.db")
            await _one("ray 2 workers, store", tasks, args.concurrency, store, True)
        finally:
            ray.shutdown()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
