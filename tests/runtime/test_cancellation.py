"""Cancelling a run from outside, leaving a stream early, and node timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

import accord
from accord.backends.base import Request
from accord.errors import NodeTimeoutError
from accord.testing import FunctionBackend

pytestmark = pytest.mark.usefixtures("no_real_backends", "store_mode")


class HangingModel:
    """A backend function that hangs on the agents in ``hang`` and records every call's fate."""

    def __init__(self, *hang: str) -> None:
        self.hang = set(hang)
        self.started: list[str] = []
        self.cancelled: list[str] = []
        self.all_started = asyncio.Event()
        self.expected = len(hang)

    async def __call__(self, request: Request) -> str:
        self.started.append(request.agent)
        if request.agent not in self.hang:
            return f"{request.agent} done"
        if sum(a in self.hang for a in self.started) >= self.expected:
            self.all_started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled.append(request.agent)
            raise
        return "never"


def _chain() -> accord.Graph:
    g = accord.Graph("chain").add(accord.Agent("a"), accord.Agent("b"), accord.Agent("c"))
    return g.connect("a", "b").connect("b", "c")


async def _cancel_when_started(task: asyncio.Task[accord.RunResult], model: HangingModel) -> None:
    await asyncio.wait_for(model.all_started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_cancel_reaches_the_model_call_in_flight_and_starts_no_other() -> None:
    model = HangingModel("b")
    events: list[object] = []
    task = asyncio.create_task(
        _chain().run("t", backend=FunctionBackend(model), on_event=events.append)
    )

    await _cancel_when_started(task, model)
    await asyncio.sleep(0.05)  # anything still scheduled would start now

    assert model.started == ["a", "b"]
    assert model.cancelled == ["b"]
    assert events[-1].kind == "run_finished"  # type: ignore[attr-defined]
    assert events[-1].status == "cancelled"  # type: ignore[attr-defined]


async def test_cancel_reaches_every_concurrent_call() -> None:
    model = HangingModel("left", "right")
    g = accord.Graph("fan").add(
        accord.Agent("start"), accord.Agent("left"), accord.Agent("right"), accord.Agent("join")
    )
    g.connect("start", "left").connect("start", "right")
    g.connect("left", "join").connect("right", "join")
    task = asyncio.create_task(g.run("t", backend=FunctionBackend(model)))

    await _cancel_when_started(task, model)
    await asyncio.sleep(0.05)

    assert sorted(model.cancelled) == ["left", "right"]
    assert "join" not in model.started
    assert not [t for t in asyncio.all_tasks() if t.get_name().endswith(("/left/0", "/right/0"))]


async def test_stream_closed_early_cancels_the_run() -> None:
    model = HangingModel("b")

    async with contextlib.aclosing(_chain().stream("t", backend=FunctionBackend(model))) as events:
        async for event in events:
            if event.kind == "activation_started" and event.node == "b":
                await asyncio.sleep(0.01)  # let b's call start
                break

    assert model.cancelled == ["b"]
    await asyncio.sleep(0.05)
    assert model.started == ["a", "b"]


async def test_stream_left_with_break_cancels_the_run_once_finalized() -> None:
    # A bare `break` leaves the async generator to the event loop's finalizer, which closes it
    # (and so cancels the run) a few loop iterations later.
    model = HangingModel("b")

    async for event in _chain().stream("t", backend=FunctionBackend(model)):
        if event.kind == "activation_started" and event.node == "b":
            await asyncio.sleep(0.01)
            break
    await asyncio.sleep(0.05)

    assert model.cancelled == ["b"]
    assert model.started == ["a", "b"]


async def test_node_timeout_raises_node_timeout_error_and_cancels_the_call() -> None:
    model = HangingModel("b")
    g = accord.Graph("chain").add(accord.Agent("a"), accord.Agent("b", timeout=0.05))
    g.connect("a", "b")

    started = time.perf_counter()
    with pytest.raises(NodeTimeoutError) as info:
        await g.run("t", backend=FunctionBackend(model))

    assert time.perf_counter() - started < 1.0
    err = info.value
    assert (err.node, err.round, err.timeout) == ("b", 0, 0.05)
    assert "node 'b' (round 0) took longer than its timeout of 0.05 s" in str(err)
    assert model.cancelled == ["b"]
    assert err.result.status == "failed"
    assert [m.sender for m in err.result.transcript] == ["a"]


async def test_node_timeout_applies_to_steps() -> None:
    @accord.step(timeout=0.05)
    async def slow(task) -> str:
        await asyncio.sleep(30)
        return "never"

    with pytest.raises(NodeTimeoutError) as info:
        await accord.Graph("g").add(slow).run("t")

    assert info.value.node == "slow"


async def test_node_timeout_does_not_fire_for_a_fast_node() -> None:
    g = accord.Graph("g").add(accord.Agent("a", timeout=1.0))

    result = await g.run("t", backend=FunctionBackend(lambda r: "fast"))

    assert result.text == "fast"
