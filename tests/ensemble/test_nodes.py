"""The methods as graph nodes, and self_consistency as a ready-made graph."""

from __future__ import annotations

import asyncio
import re
import time
import types
from collections.abc import Callable
from typing import Any

import pytest
from conftest import NBackend

import accord
from accord.backends.base import Request
from accord.ensemble import (
    BestOfNNode,
    Candidates,
    FuseNode,
    MBRNode,
    PairwiseRankNode,
    VoteNode,
    judge_utility,
    self_consistency,
)
from accord.ensemble._fanout import fan_out
from accord.errors import ConfigError, ProviderUnavailableError, RunError
from accord.testing import FunctionBackend, ScriptedBackend


async def test_self_consistency_samples_k_copies_and_votes() -> None:
    backend = ScriptedBackend(
        {"solver_0": ["Answer: 4"], "solver_1": ["I get 5"], "solver_2": ["so... Answer: 4"]}
    )
    graph = self_consistency(accord.Solver("solver"), k=3, extract="number", seed=7)
    result = await graph.run("2+2?", backend=backend)
    assert result.output is not None
    assert isinstance(result.output.payload, accord.Vote)
    assert result.output.payload.answer == "4" and result.text == "4"
    assert result.output.payload.counts == {"4": 2.0, "5": 1.0}
    assert result.output.metadata["sender"] == "solver_0"
    assert result.usage.requests == 3
    by_agent = {r.agent: r for r in backend.requests}
    assert [by_agent[f"solver_{i}"].seed for i in range(3)] == [7, 8, 9]
    assert all(r.temperature == 0.7 for r in backend.requests)


async def test_self_consistency_n_mode_asks_once_when_the_backend_returns_n() -> None:
    backend = NBackend(lambda request, i: ["Answer: 1", "Answer: 2", "Answer: 2"][i])
    graph = self_consistency(accord.Solver("solver", backend), k=3, samples="n", extract="number")
    result = await graph.run("q")
    assert result.text == "2"
    assert len(backend.requests) == 1 and backend.requests[0].n == 3
    message = next(m for m in result.transcript if m.sender == "solver")
    assert isinstance(message.payload, Candidates) and len(message.payload.texts) == 3


async def test_self_consistency_n_mode_falls_back_to_one_call_per_sample() -> None:
    backend = ScriptedBackend({"solver": ["Answer: 3", "Answer: 3", "Answer: 1"]})
    graph = self_consistency(accord.Solver("solver"), k=3, samples="n", extract="number", seed=0)
    result = await graph.run("q", backend=backend)
    assert result.text == "3" and backend.calls("solver") == 3
    assert sorted(r.seed or 0 for r in backend.requests) == [0, 1, 2]
    assert result.usage.requests == 3


def test_self_consistency_rejects_greedy_sampling_and_bad_k() -> None:
    with pytest.raises(ConfigError, match="temperature > 0"):
        self_consistency(accord.Solver("solver"), k=3, temperature=0)
    with pytest.raises(ConfigError, match="k >= 1"):
        self_consistency(accord.Solver("solver"), k=0)


async def test_vote_node_weights_senders_and_fails_clearly_without_answers() -> None:
    graph = accord.Graph("g")
    a, b, c = accord.Agent("a"), accord.Agent("b"), accord.Agent("c")
    graph.add(a, b, c, VoteNode("vote", extract="exact", weights={"a": 3.0}))
    for name in "abc":
        graph.connect(name, "vote")
    backend = ScriptedBackend({"a": ["x", ""], "b": ["y", ""], "c": ["y", ""]})
    result = await graph.run("t", backend=backend)
    assert result.text == "x" and result.output is not None
    assert result.output.metadata["sender"] == "a"
    with pytest.raises(RunError, match="vote cannot pick an answer"):
        await graph.run("t", backend=backend)


async def _two_solvers_into(node: object, replies: dict[str, list[str]]) -> accord.RunResult:
    graph = accord.Graph("g")
    graph.add(accord.Agent("s1"), accord.Agent("s2"), accord.Agent("s3"), node)
    for name in ("s1", "s2", "s3"):
        graph.connect(name, node)
    return await graph.run("task text", backend=ScriptedBackend(replies))


async def test_mbr_node_selects_the_consensus_input() -> None:
    result = await _two_solvers_into(
        MBRNode("mbr", utility="token_f1"),
        {"s1": ["red green blue"], "s2": ["purple"], "s3": ["red green"]},
    )
    assert result.text == "red green blue"
    assert result.output is not None and result.output.metadata["sender"] == "s1"


async def test_best_of_n_node_judge_calls_count_in_the_run() -> None:
    result = await _two_solvers_into(
        BestOfNNode("best", judge=accord.Agent("judge")),
        {"s1": ["a"], "s2": ["b"], "s3": ["c"], "judge": ["2", "8", "5"]},
    )
    assert result.text == "b"
    assert result.usage_by_agent["best"].requests == 3
    assert result.usage.requests == 6


async def test_pairwise_rank_node_records_the_ranking() -> None:
    def judge(request: Request) -> str:
        if request.agent != "judge":
            return {"s1": "1", "s2": "3", "s3": "2"}[request.agent]
        prompt = request.messages[-1].content
        a = re.search(r"<response_a>\n(.*?)\n</response_a>", prompt, re.S)
        b = re.search(r"<response_b>\n(.*?)\n</response_b>", prompt, re.S)
        assert a and b
        return "A" if int(a.group(1)) > int(b.group(1)) else "B"

    graph = accord.Graph("g")
    graph.add(accord.Agent("s1"), accord.Agent("s2"), accord.Agent("s3"))
    graph.add(PairwiseRankNode("rank", judge=accord.Agent("judge")))
    for name in ("s1", "s2", "s3"):
        graph.connect(name, "rank")
    result = await graph.run("t", backend=FunctionBackend(judge))
    assert result.text == "3"
    assert result.output is not None and result.output.metadata["ranking"] == "1,2,0"
    assert result.usage_by_agent["rank"].requests == 6


async def test_fuse_node_sends_the_aggregators_answer() -> None:
    result = await _two_solvers_into(
        FuseNode("fuse", aggregator=accord.Aggregator("agg"), top=2),
        {"s1": ["one"], "s2": ["two"], "s3": ["three"], "agg": ["merged"]},
    )
    assert result.text == "merged"
    assert result.output is not None and result.output.metadata["sources"] == "s1,s2"


class _CallLog:
    """A model that records each call as running, finished or cancelled; one call fails fast."""

    def __init__(self, fails: Callable[[Request], bool], slow_s: float = 0.4) -> None:
        self.fails = fails
        self.slow_s = slow_s
        self.states: list[str] = []

    async def __call__(self, request: Request) -> str:
        index = len(self.states)
        self.states.append("running")
        try:
            if request.agent in ("s1", "s2", "s3"):
                self.states[index] = "finished"
                return {"s1": "alpha", "s2": "beta", "s3": "gamma"}[request.agent]
            if self.fails(request):
                await asyncio.sleep(0.01)
                self.states[index] = "failed"
                raise ProviderUnavailableError("the server went away", provider="fake")
            await asyncio.sleep(self.slow_s)
        except asyncio.CancelledError:
            self.states[index] = "cancelled"
            raise
        self.states[index] = "finished"
        return "5"


def _first_judge_call() -> Callable[[Request], bool]:
    seen: list[Request] = []

    def fails(request: Request) -> bool:
        seen.append(request)
        return len(seen) == 1

    return fails


def _sampling_graph() -> accord.Graph:
    return self_consistency(accord.Solver("solver"), k=3, samples="n", extract="number", seed=0)


def _selection_graph(node: object) -> accord.Graph:
    graph = accord.Graph("g")
    graph.add(accord.Agent("s1"), accord.Agent("s2"), accord.Agent("s3"), node)
    for name in ("s1", "s2", "s3"):
        graph.connect(name, node)
    return graph


@pytest.mark.parametrize(
    "make_graph",
    [
        pytest.param(_sampling_graph, id="sample-node"),
        pytest.param(
            lambda: _selection_graph(BestOfNNode("best", judge=accord.Agent("judge"))),
            id="best-of-n",
        ),
        pytest.param(
            lambda: _selection_graph(PairwiseRankNode("rank", judge=accord.Agent("judge"))),
            id="pairwise",
        ),
        pytest.param(
            lambda: _selection_graph(
                MBRNode("mbr", utility=judge_utility(accord.Agent("judge")), extract="text")
            ),
            id="mbr-llm-utility",
        ),
    ],
)
async def test_ensemble_node_no_model_call_outlives_a_failed_run(
    make_graph: Callable[[], accord.Graph],
) -> None:
    log = _CallLog(_first_judge_call())
    with pytest.raises(RunError):
        await make_graph().run("task", backend=FunctionBackend(log))
    assert "running" not in log.states, log.states
    assert log.states.count("failed") == 1 and "cancelled" in log.states
    started = len(log.states)
    await asyncio.sleep(log.slow_s + 0.1)
    assert len(log.states) == started, "a model call started after graph.run raised"
    assert "running" not in log.states and log.states.count("finished") <= 3


async def test_fan_out_raises_the_failing_calls_own_error_with_its_cause() -> None:
    async def broken() -> int:
        try:
            raise OSError("socket closed")
        except OSError as exc:
            raise ProviderUnavailableError("unreachable") from exc

    async def slow() -> int:
        await asyncio.sleep(10)
        return 1

    with pytest.raises(ProviderUnavailableError) as info:
        await fan_out([slow(), broken(), slow()])
    assert isinstance(info.value.__cause__, OSError)
    assert await fan_out([asyncio.sleep(0, result=1), asyncio.sleep(0, result=2)]) == [1, 2]


async def test_fan_out_cancelled_by_its_caller_cancels_every_call() -> None:
    states: list[str] = []

    async def slow() -> None:
        index = len(states)
        states.append("running")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            states[index] = "cancelled"
            raise

    outer = asyncio.create_task(fan_out([slow(), slow(), slow()]))
    await asyncio.sleep(0.05)
    outer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert states == ["cancelled"] * 3


async def test_token_forward_passes_all_end_before_a_failure_is_raised() -> None:
    import threading

    from accord.ensemble._lm import sync_all

    finished = threading.Event()

    class Worker:  # a model's worker thread, as HFBackend.run_in_worker gives
        async def run_in_worker(self, fn: Any) -> Any:
            return await asyncio.to_thread(fn)

    class Fake:
        stale = True

        def __init__(self, fails: bool) -> None:
            self.fails = fails
            self.lm = types.SimpleNamespace(backend=Worker())

        def sync(self) -> None:
            if self.fails:
                raise RuntimeError("forward pass failed")
            time.sleep(0.3)
            finished.set()

    with pytest.raises(RuntimeError, match="forward pass failed"):
        await sync_all([Fake(True), Fake(False)])  # type: ignore[list-item]
    assert finished.is_set(), "a forward pass was still running after sync_all raised"
