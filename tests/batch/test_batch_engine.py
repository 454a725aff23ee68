"""accord.batch embedded: results as runs finish, bounded concurrency over one backend, and
resuming a batch from the run store (skip finished, retry failed only when asked)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from batch_graphs import answer, chain

import accord
from accord.backends.base import Request
from accord.batch import Batch, BatchResult
from accord.errors import ConfigError
from accord.testing import FunctionBackend


async def _collect(b: Batch) -> dict[str, BatchResult]:
    return {r.id: r async for r in b}


def _tasks(n: int, prefix: str = "t") -> list[str]:
    return [f"TASK {prefix}{i}" for i in range(n)]


async def test_batch_yields_every_result_and_a_summary() -> None:
    b = accord.batch(chain(), [*_tasks(3), "TASK fail9"])
    results = await _collect(b)
    assert {k: r.status for k, r in results.items()} == {
        "1": "completed",
        "2": "completed",
        "3": "completed",
        "4": "failed",
    }
    assert results["2"].output.startswith("c:t1:")
    assert "no answer for fail9" in (results["4"].error or "")
    s = b.summary
    assert (s.total, s.completed, s.failed, s.usage.requests) == (4, 3, 1, 9)


async def test_batch_concurrency_bounds_runs_sharing_one_backend() -> None:
    in_flight = peak = 0

    async def slow(request: Request) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return await answer(request)

    backend = FunctionBackend(slow)
    g = accord.Graph("one")
    g.add(accord.Agent("a"))
    results = await _collect(accord.batch(g, _tasks(12), backend, concurrency=3))
    assert len(results) == 12 and peak == 3
    assert backend.calls() == 12  # every run went through the one backend


async def test_batch_rerun_skips_finished_and_retries_failed_only_when_asked(
    tmp_path: Path,
) -> None:
    calls: list[str] = []

    async def counted(request: Request) -> str:
        calls.append(request.messages[-1].content)
        if "fail" in request.messages[-1].content and not retry:
            raise ValueError("down")
        return f"ok {len(calls)}"

    g = accord.Graph("one")
    g.add(accord.Agent("a", backend=FunctionBackend(counted)))
    tasks = ["TASK t1", "TASK fail2"]
    async with accord.open_store(tmp_path / "runs.db") as store:
        retry = False
        first = await _collect(accord.batch(g, tasks, store=store))
        assert (first["1"].status, first["2"].status, len(calls)) == ("completed", "failed", 2)
        again = accord.batch(g, tasks, store=store)
        second = await _collect(again)
        assert len(calls) == 2  # no model call: one finished, one failed and not retried
        assert second["1"].output == first["1"].output and second["1"].resumed
        assert second["2"].status == "failed" and "down" in (second["2"].error or "")
        retry = True
        third = await _collect(accord.batch(g, tasks, store=store, retry_failed=True))
        assert third["2"].status == "completed" and len(calls) == 3
        assert third["2"].run_id == first["2"].run_id


async def test_batch_skip_leaves_out_tasks_the_caller_has() -> None:
    b = accord.batch(chain(), _tasks(3), skip=["2"])
    assert set(await _collect(b)) == {"1", "3"} and b.summary.skipped == 1


def test_batch_refuses_bad_options_and_tasks() -> None:
    with pytest.raises(ConfigError, match="concurrency must be 1 or more"):
        accord.batch(chain(), ["x"], concurrency=0)
    with pytest.raises(ConfigError, match="task 2: unknown key"):
        accord.batch(chain(), ["x", {"text": "y"}])


async def test_batch_accepts_a_function_that_builds_the_graph() -> None:
    results = await _collect(accord.batch(chain, _tasks(2)))
    assert [results[k].output.split(":")[1] for k in ("1", "2")] == ["t0", "t1"]
