"""accord.batch on a local Ray instance: the same results as the embedded engine, and a worker
killed mid-batch has its run resumed by a new worker from the shared SQLite store.

One Ray instance (``ray.init(num_cpus=2)``, several seconds) serves the whole module. Skipped
when Ray is not installed (``pip install "accord[ray]"``).
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "accord[ray]")')

from batch_graphs import chain  # noqa: E402

import accord  # noqa: E402
from accord.batch import BatchResult  # noqa: E402


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    folder = tmp_path_factory.mktemp("ray")
    paths = {"CALL_LOG": folder / "calls.log", "BUILD_LOG": folder / "builds.log"}
    env = {
        "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        "CALL_LOG": str(paths["CALL_LOG"]),
        "BUILD_LOG": str(paths["BUILD_LOG"]),
        "DIE_AT": "k3",
        "ACCORD_DURABILITY": "sync",
        "BATCH_DELAY": "0.02",
        "HF_HUB_OFFLINE": "1",
    }
    ray.init(
        num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": env}
    )
    try:
        yield paths
    finally:
        ray.shutdown()


def _died(log: Path) -> bool:
    return Path(str(log) + ".died").exists()


def _facts(results: list[BatchResult]) -> dict[str, tuple[Any, ...]]:
    return {r.id: (r.status, r.output, r.usage.requests, r.usage.total_tokens) for r in results}


async def test_batch_on_ray_gives_the_results_of_the_embedded_engine(
    logs: dict[str, Path], tmp_path: Path
) -> None:
    tasks = [f"TASK d{i}" for i in range(8)] + ["TASK fail8"]
    embedded = [r async for r in accord.batch(chain, tasks, store=tmp_path / "a.db")]
    b = accord.batch(chain, tasks, store=tmp_path / "b.db", ray=True, workers=2, concurrency=2)
    on_ray = [r async for r in b]
    assert _facts(on_ray) == _facts(embedded)
    assert len(on_ray) == 9 and b.summary.failed == 1 and b.summary.completed == 8


async def test_batch_on_ray_resumes_the_run_of_a_killed_worker(
    logs: dict[str, Path], tmp_path: Path
) -> None:
    builds_before = len(logs["BUILD_LOG"].read_text().splitlines())
    tasks = [f"TASK k{i}" for i in range(8)]
    b = accord.batch(chain, tasks, store=tmp_path / "k.db", ray=True, workers=2, concurrency=2)
    results = {r.id: r async for r in b}
    assert _died(logs["CALL_LOG"])  # the worker did die mid-run
    assert all(r.status == "completed" for r in results.values())
    assert all(results[str(i + 1)].output.startswith(f"c:k{i}:") for i in range(8))
    assert results["4"].resumed  # task k3's run went on from the store
    calls = Counter(
        tuple(line.split()[:2])
        for line in logs["CALL_LOG"].read_text().splitlines()
        if line.startswith("k")
    )
    assert calls[("k3", "a")] == 1  # finished before the kill: not run again
    assert calls[("k3", "b")] == 2  # in flight at the kill: run once more
    assert calls[("k3", "c")] == 1
    # one graph per worker, plus one for the worker that replaced the dead one
    assert len(logs["BUILD_LOG"].read_text().splitlines()) - builds_before == 3
