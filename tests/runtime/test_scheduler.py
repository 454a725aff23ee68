"""The scheduler: concurrency without a global barrier, deterministic transcripts, loops,
step limits (T20), failures, and how messages are named and ordered."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time

import pytest

import accord
from accord.backends.base import Request
from accord.errors import ProviderUnavailableError, StepLimitError
from accord.testing import FunctionBackend, ScriptedBackend

pytestmark = pytest.mark.usefixtures("no_real_backends", "store_mode")

APPROVE = '{"approved": true}'
REJECT = '{"approved": false, "issues": ["too vague"]}'


def _sleeping(
    delays: dict[str, float], finished: dict[str, float] | None = None
) -> FunctionBackend:
    """A backend whose agents each take ``delays[agent]`` seconds and answer with their name."""

    async def model(request: Request) -> str:
        await asyncio.sleep(delays.get(request.agent, 0.0))
        if finished is not None:
            finished[request.agent] = time.perf_counter()
        return f"{request.agent} {request.round}"

    return FunctionBackend(model)


def _fan(branches: list[list[str]], *, join: bool = True) -> accord.Graph:
    """start -> each chain of agents in ``branches`` (-> join)."""

    @accord.step
    def start(task) -> str:
        return task

    g = accord.Graph("fan").add(start)
    for chain in branches:
        g.add(*(accord.Agent(n) for n in chain))
        g.connect("start", chain[0])
        for a, b in zip(chain, chain[1:], strict=False):
            g.connect(a, b)
    if join:
        g.add(accord.Agent("join"))
        for chain in branches:
            g.connect(chain[-1], "join")
    return g


# ------------------------------------------------------------------ concurrency


async def _warm(g: accord.Graph) -> None:
    """Run once without delays, so one-time costs (imports, template compiles) are not timed."""
    await g.run("warm-up", backend=_sleeping({}))


async def test_scheduler_runs_two_50ms_branches_together() -> None:
    backend = _sleeping({"a": 0.05, "b": 0.05})
    g = _fan([["a"], ["b"]])
    await _warm(g)

    started = time.perf_counter()
    result = await g.run("t", backend=backend)
    elapsed = time.perf_counter() - started

    # Sequential would take 100 ms; concurrent about 50 ms.
    assert elapsed < 0.09, f"two 50 ms branches took {elapsed * 1000:.0f} ms"
    timing = {t.node: t for t in result.timings}
    assert abs(timing["a"].started_at - timing["b"].started_at) < 0.02
    assert result.output is not None
    assert [m.sender for m in result.transcript] == ["start", "a", "b", "join"]


async def test_scheduler_fast_branch_is_not_held_back_by_a_slow_one() -> None:
    finished: dict[str, float] = {}
    backend = _sleeping({"f1": 0.01, "f2": 0.01, "f3": 0.01, "slow": 0.2}, finished)
    g = _fan([["f1", "f2", "f3"], ["slow"]], join=False)
    await _warm(g)

    started = time.perf_counter()
    result = await g.run("t", backend=backend)

    # With a barrier per step, f2 would start only after slow finished (>= 200 ms).
    assert finished["f3"] < finished["slow"]
    assert finished["f3"] - started < 0.12, f"f3 done after {finished['f3'] - started:.3f} s"
    assert set(result.outputs) == {"f3", "slow"}


async def test_scheduler_join_all_waits_for_every_branch_and_takes_one_of_each() -> None:
    backend = _sleeping({"a": 0.03, "b": 0.0})
    g = _fan([["a"], ["b"]])

    result = await g.run("t", backend=backend, run_id="r")

    join = [m for m in result.transcript if m.sender == "join"]
    assert len(join) == 1
    assert join[0].parents == ("r/a/0", "r/b/0")
    join_request = next(r for r in backend.requests if r.agent == "join")
    prompt = join_request.messages[-1].content
    assert prompt.index('<message from="a"') < prompt.index('<message from="b"')


async def test_scheduler_join_any_runs_once_per_message() -> None:
    backend = ScriptedBackend({"a": ["x"], "b": ["y"], "any": ["one", "two"]})
    g = accord.Graph("g").add(accord.Agent("a"), accord.Agent("b"), accord.Agent("any", join="any"))
    g.connect("a", "any").connect("b", "any")

    result = await g.run("t", backend=backend)

    assert [m.text for m in result.transcript if m.sender == "any"] == ["one", "two"]
    assert all(len(m.parents) == 1 for m in result.transcript if m.sender == "any")


# ------------------------------------------------------------------ determinism


def _reply(request: Request) -> str:
    """A deterministic reply that depends on everything the agent was shown."""
    seen = hashlib.sha256(
        "\n".join(f"{m.role}:{m.content}" for m in request.messages).encode()
    ).hexdigest()[:8]
    if request.agent == "critic":
        return APPROVE if request.round >= 1 else REJECT
    return f"{request.agent} r{request.round} saw {seen}"


def _pipeline() -> accord.Graph:
    g = accord.Graph("pipeline").add(
        accord.Planner("planner", output=str),
        accord.Solver("solver_a"),
        accord.Solver("solver_b"),
        accord.Aggregator("aggregator"),
        accord.Critic("critic"),
    )
    g.connect("planner", "solver_a").connect("planner", "solver_b")
    g.connect("solver_a", "aggregator").connect("solver_b", "aggregator")
    g.connect("aggregator", "critic")
    g.connect("critic", "planner", when=lambda m: not m.payload.approved, max_rounds=3)
    return g.set_entry("planner").set_exit("aggregator")


def _random_delays(seed: int) -> FunctionBackend:
    rng = random.Random(seed)

    async def model(request: Request) -> str:
        await asyncio.sleep(rng.uniform(0, 0.006))
        return _reply(request)

    return FunctionBackend(model)


def _facts(result: accord.RunResult) -> list[tuple[object, ...]]:
    return [(m.id, m.sender, m.round, m.text, m.parents, m.recipients) for m in result.transcript]


async def test_scheduler_transcript_is_the_same_under_random_delays() -> None:
    reference = await _pipeline().run("t", backend=FunctionBackend(_reply), run_id="run")
    expected = _facts(reference)
    assert [m.sender for m in reference.transcript] == [
        "planner",
        "solver_a",
        "solver_b",
        "aggregator",
        "critic",
        "planner",
        "solver_a",
        "solver_b",
        "aggregator",
        "critic",
    ]

    for seed in range(20):
        result = await _pipeline().run(  # one run id, so not recorded again (store_mode)
            "t", backend=_random_delays(seed), run_id="run", durability="off"
        )
        assert _facts(result) == expected, f"seed {seed}"
        assert result.text == reference.text


# ------------------------------------------------------------------ loops


def _critique_loop(max_rounds: int = 3) -> accord.Graph:
    g = accord.Graph("review").add(accord.Solver("solver"), accord.Critic("critic"))
    g.connect("solver", "critic")
    g.connect("critic", "solver", when=lambda m: not m.payload.approved, max_rounds=max_rounds)
    return g.set_entry("solver").set_exit("solver")


async def test_critique_loop_stops_when_critic_approves() -> None:
    backend = ScriptedBackend({"solver": ["draft 1", "draft 2"], "critic": [REJECT, APPROVE]})

    result = await _critique_loop().run("write a haiku", backend=backend, run_id="r")

    assert result.status == "completed"
    assert result.output is not None and result.output.text == "draft 2"
    assert [m.sender for m in result.transcript] == ["solver", "critic", "solver", "critic"]
    assert [m.id for m in result.transcript] == [
        "r/solver/0",
        "r/critic/0",
        "r/solver/1",
        "r/critic/1",
    ]
    assert result.transcript[2].parents == ("r/critic/0",)


async def test_critique_loop_stops_at_max_rounds() -> None:
    backend = ScriptedBackend(
        {"solver": ["draft 1", "draft 2", "draft 3"], "critic": [REJECT, REJECT, REJECT]}
    )

    result = await _critique_loop(max_rounds=3).run("write a haiku", backend=backend)

    assert result.status == "completed"
    assert result.output is not None and result.output.text == "draft 3"
    assert [m.sender for m in result.transcript] == ["solver", "critic"] * 3
    assert backend.calls("solver") == 3
    critic_last = result.transcript[-1]
    assert critic_last.recipients == ()


async def test_step_limit_is_raised_at_exactly_the_limit() -> None:
    # T20: an exit that never fires; the limit stops the run and names the node.
    g = accord.Graph("runaway").add(accord.Agent("pro"), accord.Agent("con"))
    g.connect("pro", "con").connect("con", "pro", when=lambda m: True)
    g.set_entry("pro").set_exit("con")
    backend = ScriptedBackend({"*": ["again"] * 20})

    with pytest.raises(StepLimitError) as info:
        await g.run("t", backend=backend, max_steps=5)

    err = info.value
    assert (err.limit, err.last_node) == (5, "con")
    assert "step limit of 5" in str(err)
    assert backend.calls() == 5
    assert err.result.status == "failed"
    assert len(err.result.transcript) == 5


async def test_step_limit_equal_to_the_steps_needed_lets_the_run_finish() -> None:
    g = accord.Graph("chain").add(accord.Agent("a"), accord.Agent("b"), accord.Agent("c"))
    g.connect("a", "b").connect("b", "c")

    result = await g.run("t", backend=ScriptedBackend({"*": ["x"] * 3}), max_steps=3)

    assert result.status == "completed"


async def test_step_limit_default_is_50() -> None:
    g = accord.Graph("runaway").add(accord.Agent("a"))
    g.connect("a", "a", when=lambda m: True)
    g.set_entry("a").set_exit("a")

    with pytest.raises(StepLimitError) as info:
        await g.run("t", backend=ScriptedBackend({"*": ["again"] * 60}))

    assert info.value.limit == 50


# ------------------------------------------------------------------ failures


async def test_scheduler_failure_cancels_the_other_branch_and_keeps_the_partial_result() -> None:
    cancelled: list[str] = []

    async def model(request: Request) -> str:
        if request.agent == "bad":
            await asyncio.sleep(0.01)
            raise ProviderUnavailableError("the provider is down", status_code=503)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(request.agent)
            raise
        return "never"

    g = _fan([["bad"], ["slow"]], join=False)

    started = time.perf_counter()
    with pytest.raises(ProviderUnavailableError) as info:
        await g.run("t", backend=FunctionBackend(model))

    assert time.perf_counter() - started < 1.0
    assert cancelled == ["slow"]
    assert info.value.result.status == "failed"
    assert [m.sender for m in info.value.result.transcript] == ["start"]


# ------------------------------------------------------------------ results


async def test_run_result_names_messages_by_run_node_and_round() -> None:
    g = _fan([["a"], ["b"]])

    result = await g.run("the task", backend=ScriptedBackend({"*": ["x"] * 3}), run_id="run7")

    assert result.run_id == "run7"
    assert result.task == "the task"
    by_sender = {m.sender: m for m in result.transcript}
    assert by_sender["start"].parents == ("run7/task",)
    assert by_sender["start"].recipients == ("a", "b")
    assert by_sender["a"].id == "run7/a/0"
    assert {m.run_id for m in result.transcript} == {"run7"}
    assert result.outputs == {"join": by_sender["join"]}


async def test_run_result_adds_up_usage_per_agent() -> None:
    g = _fan([["a"], ["b"]])
    backend = ScriptedBackend({"*": ["x"] * 3})

    result = await g.run("t", backend=backend)

    assert result.usage.requests == 3
    assert set(result.usage_by_agent) == {"a", "b", "join"}
    assert sum(u.total_tokens for u in result.usage_by_agent.values()) == result.usage.total_tokens
    assert len(result.timings) == 4


def test_run_sync_runs_the_graph_without_an_event_loop() -> None:
    g = accord.Graph("g").add(accord.Agent("a"))

    result = g.run_sync("t", ScriptedBackend({"a": ["sync reply"]}), run_id="s")

    assert result.status == "completed"
    assert result.text == "sync reply"
    assert result.run_id == "s"


async def test_subgraph_runs_on_its_inputs_and_counts_its_usage() -> None:
    inner = accord.Graph("inner").add(accord.Agent("inner_a"), accord.Agent("inner_b"))
    inner.connect("inner_a", "inner_b")
    g = accord.Graph("outer").add(accord.Agent("first"), inner).connect("first", "inner")
    backend = ScriptedBackend({"first": ["step one"], "inner_a": ["x"], "inner_b": ["inner out"]})

    result = await g.run("t", backend=backend)

    assert result.text == "inner out"
    inner_a = next(r for r in backend.requests if r.agent == "inner_a")
    assert "<task>\nstep one\n</task>" in inner_a.messages[-1].content
    assert result.usage.requests == 3
    assert result.usage_by_agent["inner/inner_a"].requests == 1  # by node path, as in events
    assert result.usage_by_agent["inner/inner_b"].requests == 1
    assert result.outputs["inner"].usage.requests == 2
