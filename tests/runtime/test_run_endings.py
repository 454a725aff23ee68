"""Every way a run ends is reported the same way: an error with the partial result, a
``run_finished`` event carrying the output, and (when recorded) a ``failed`` row in the store."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import accord
from accord.errors import GraphError, NodeError, StepLimitError
from accord.testing import FunctionBackend

pytestmark = pytest.mark.usefixtures("no_real_backends")


def _echo() -> FunctionBackend:
    return FunctionBackend(lambda request: f"{request.agent} {request.round}")


def _two_steps(fail: Any) -> accord.Graph:
    @accord.step
    def first(task: str) -> str:
        return "first done"

    g = accord.Graph("g").add(first, accord.step(name="second")(fail))
    return g.connect("first", "second")


async def test_step_raising_value_error_becomes_node_error_with_result_and_run_finished() -> None:
    def broken(text: str) -> str:
        raise ValueError("bad input")

    events: list[Any] = []

    with pytest.raises(NodeError) as err:
        await _two_steps(broken).run("t", on_event=events.append)

    assert isinstance(err.value.__cause__, ValueError)
    assert err.value.node == "second" and err.value.round == 0
    assert "ValueError: bad input" in str(err.value)
    assert err.value.result is not None and err.value.result.status == "failed"
    assert [m.sender for m in err.value.result.transcript] == ["first"]
    assert events[-1].kind == "run_finished" and events[-1].status == "failed"


async def test_node_own_timeout_error_is_a_node_error_not_the_run_deadline() -> None:
    async def slow(text: str) -> str:
        await asyncio.wait_for(asyncio.sleep(1), timeout=0.01)
        return "never"

    with pytest.raises(NodeError) as err:
        await _two_steps(slow).run("t", until=accord.Timeout(30))

    assert isinstance(err.value.__cause__, TimeoutError)
    assert err.value.result.status == "failed"


async def test_run_deadline_still_stops_the_run() -> None:
    async def slow(text: str) -> str:
        await asyncio.sleep(5)
        return "never"

    result = await _two_steps(slow).run("t", until=accord.Timeout(0.05))

    assert result.status == "stopped" and "time limit" in (result.stop_reason or "")


async def test_failing_when_condition_becomes_node_error_naming_the_edge() -> None:
    def condition(m: accord.Message) -> bool:
        raise KeyError("verdict")

    g = accord.Graph("g").add(accord.Agent("a"), accord.Agent("b"))
    g.connect("a", "b", when=condition)

    with pytest.raises(NodeError, match="when= condition of edge 'a' -> 'b'") as err:
        await g.run("t", _echo())

    assert isinstance(err.value.__cause__, KeyError)
    assert err.value.node == "a" and err.value.result.status == "failed"


async def test_failed_run_is_recorded_as_failed_in_the_store(tmp_path: Path) -> None:
    def broken(text: str) -> str:
        raise ValueError("bad input")

    db = tmp_path / "runs.db"
    with pytest.raises(NodeError) as err:
        await _two_steps(broken).run("t", store=db, durability="sync")

    from accord.store import open_store

    row = open_store(db).get_run(err.value.result.run_id)
    assert row.status == "failed"


async def test_run_finished_event_carries_the_output() -> None:
    g = accord.Graph("g").add(accord.Agent("a"), accord.Agent("b")).connect("a", "b")

    events = [ev async for ev in g.stream("t", _echo(), tokens=False)]

    assert events[-1].kind == "run_finished"
    assert events[-1].output is not None and events[-1].output.text == "b 0"


# ------------------------------------------------------------------ node names and step limits


@pytest.mark.parametrize("name", ["task", "a/b", ""])
def test_graph_add_refuses_reserved_node_names(name: str) -> None:
    def fn(text: str) -> str:
        return text

    with pytest.raises(GraphError, match="name"):
        accord.Graph("g").add(accord.step(name=name)(fn) if name else _unnamed())


def _unnamed() -> Any:
    def fn(text: str) -> str:
        return text

    node = accord.step(fn)
    node.name = ""
    return node


async def test_loop_free_chain_longer_than_step_limit_says_what_happened() -> None:
    g = accord.Graph("chain")
    names = [f"n{i}" for i in range(60)]
    g.add(*(accord.Agent(n, memory=False) for n in names))
    for a, b in zip(names, names[1:], strict=False):
        g.connect(a, b)

    with pytest.raises(StepLimitError) as err:
        await g.run("t", _echo())

    message = str(err.value)
    assert "50 activations on a graph of 60 nodes without loops" in message
    assert "max_steps" in message and "converging" not in message


async def test_graph_step_limit_is_used_when_run_gives_none() -> None:
    g = accord.Graph("chain", max_steps=70)
    names = [f"n{i}" for i in range(60)]
    g.add(*(accord.Agent(n, memory=False) for n in names))
    for a, b in zip(names, names[1:], strict=False):
        g.connect(a, b)

    result = await g.run("t", _echo())

    assert len(result.transcript) == 60
    with pytest.raises(StepLimitError):
        await g.run("t", _echo(), max_steps=10)


async def test_debate_with_many_agents_does_not_hit_the_step_limit() -> None:
    g = accord.debate([accord.Debater(f"d{i}") for i in range(30)], rounds=2)
    # every debater answers differently: no consensus, so both rounds run (63 activations)
    backend = FunctionBackend(lambda request: f"The answer is {request.agent[1:]}.")

    result = await g.run("2+2?", backend)

    assert result.status == "completed"
    assert len(result.transcript) == 2 * 31 + 1


# ------------------------------------------------------------------ subgraphs inside the run


def _outer_with_inner() -> accord.Graph:
    inner = accord.Graph("inner").add(accord.Agent("x"), accord.Agent("y")).connect("x", "y")
    outer = accord.Graph("outer").add(accord.Agent("first"), inner, accord.Agent("last"))
    return outer.connect("first", "inner").connect("inner", "last")


async def test_subgraph_calls_count_against_the_parent_request_budget() -> None:
    backend = _echo()

    result = await _outer_with_inner().run("t", backend, until=accord.RequestBudget(2))

    assert result.status == "stopped"
    assert len(backend.requests) == 2
    assert result.usage.requests == 2


async def test_subgraph_activations_count_against_the_parent_step_limit() -> None:
    with pytest.raises(StepLimitError):
        await _outer_with_inner().run("t", _echo(), max_steps=3)


async def test_subgraph_events_name_inner_nodes_by_path() -> None:
    events: list[Any] = []

    await _outer_with_inner().run("t", _echo(), on_event=events.append)

    started = [e.node for e in events if e.kind == "activation_started"]
    assert started == ["first", "inner", "inner/x", "inner/y", "last"]
    assert [e.kind for e in events].count("run_started") == 1
    assert [e.kind for e in events].count("run_finished") == 1


async def test_subgraph_is_cancelled_with_its_parent() -> None:
    calls: list[str] = []
    inner_started = asyncio.Event()

    async def model(request: Any) -> str:
        calls.append(request.agent)
        if request.agent == "x":
            inner_started.set()
            await asyncio.sleep(5)
        return "late"

    task = asyncio.create_task(_outer_with_inner().run("t", FunctionBackend(model)))
    await inner_started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls.count("x") == 1 and "y" not in calls


async def test_subgraph_activations_are_recorded_so_resume_skips_them(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    failing = FunctionBackend(
        lambda request: (_ for _ in ()).throw(ValueError("down")) if request.agent == "y" else "ok"
    )
    with pytest.raises(NodeError) as err:
        await _outer_with_inner().run("t", failing, store=db, durability="sync")
    run_id = err.value.result.run_id

    again = _echo()
    result = await _outer_with_inner().resume(run_id, again, store=db)

    assert result.status == "completed"
    # first and inner/x came from the store; only the activation that failed and the rest run
    assert [r.agent for r in again.requests] == ["y", "last"]
