"""Termination conditions and budgets: each one, their composition, and budgets checked before
the model call they would refuse."""

from __future__ import annotations

import asyncio
import time

import pytest

import accord
from accord.backends.base import Completion, Request
from accord.messages import Usage
from accord.runtime import Condition, RunSnapshot
from accord.testing import FunctionBackend, ScriptedBackend

pytestmark = pytest.mark.usefixtures("no_real_backends", "store_mode")


def _ping_pong() -> accord.Graph:
    """pro <-> con forever (until a condition or the step limit stops it)."""
    g = accord.Graph("ping").add(accord.Agent("pro"), accord.Agent("con"))
    g.connect("pro", "con").connect("con", "pro", when=lambda m: True)
    return g.set_entry("pro").set_exit("con")


def _numbered() -> FunctionBackend:
    return FunctionBackend(lambda r: f"{r.agent} {r.round}")


async def test_max_steps_stops_after_n_activations() -> None:
    backend = _numbered()

    result = await _ping_pong().run("t", backend=backend, until=accord.MaxSteps(3))

    assert result.status == "stopped"
    assert result.stop_reason == "MaxSteps(3) reached"
    assert [m.text for m in result.transcript] == ["pro 0", "con 0", "pro 1"]
    assert backend.calls() == 3
    assert result.output is not None and result.output.text == "con 0"


async def test_max_rounds_stops_when_a_node_finishes_n_rounds() -> None:
    result = await _ping_pong().run("t", backend=_numbered(), until=accord.MaxRounds(2))

    assert result.status == "stopped"
    assert result.stop_reason == "MaxRounds(2) reached by 'pro'"
    assert [m.text for m in result.transcript] == ["pro 0", "con 0", "pro 1"]


async def test_timeout_stops_the_run_and_cancels_the_call_in_flight() -> None:
    cancelled: list[str] = []

    async def model(request: Request) -> str:
        if request.round == 0:
            return "quick"
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.append(request.agent)
            raise
        return "never"

    started = time.perf_counter()
    result = await _ping_pong().run("t", backend=FunctionBackend(model), until=accord.Timeout(0.1))
    elapsed = time.perf_counter() - started

    assert result.status == "stopped"
    assert "Timeout(0.1)" in (result.stop_reason or "")
    assert 0.09 < elapsed < 1.0
    assert cancelled == ["pro"]
    assert [m.text for m in result.transcript] == ["quick", "quick"]


def test_timeout_after_message_fires_once_the_time_has_passed() -> None:
    assert accord.Timeout(1).after_message(RunSnapshot(elapsed_s=0.5)) is None
    assert accord.Timeout(1).after_message(RunSnapshot(elapsed_s=1.0)) == "Timeout(1) reached"
    assert accord.Timeout(1).deadline_s() == 1


async def test_token_budget_refuses_the_call_that_would_exceed_it() -> None:
    def long_replies() -> ScriptedBackend:
        return ScriptedBackend({"*": ["x" * 400] * 10})

    two_calls = await _ping_pong().run("t", backend=long_replies(), until=accord.MaxSteps(2))
    used = two_calls.usage.total_tokens
    backend = long_replies()

    # The third call would send con's 400-character reply (about 100 tokens): over budget.
    result = await _ping_pong().run("t", backend=backend, until=accord.TokenBudget(used + 50))

    assert result.status == "stopped"
    assert (result.stop_reason or "").startswith(
        f"TokenBudget({used + 50}) would be exceeded: {used} tokens used"
    )
    assert backend.calls() == 2
    assert result.usage.total_tokens == used


async def test_budget_exceeded_before_the_first_call_makes_no_call() -> None:
    backend = ScriptedBackend({"*": ["x"]})

    result = await _ping_pong().run(
        "a long task " * 50, backend=backend, until=accord.TokenBudget(10)
    )

    assert result.status == "stopped"
    assert "TokenBudget(10) would be exceeded: 0 tokens used" in (result.stop_reason or "")
    assert backend.calls() == 0
    assert result.transcript == []
    assert result.output is None


async def test_cost_budget_refuses_calls_once_the_budget_is_spent() -> None:
    def model(request: Request) -> Completion:
        return Completion.of_text("paid", usage=Usage(requests=1, cost=0.6))

    backend = FunctionBackend(model)

    result = await _ping_pong().run("t", backend=backend, until=accord.CostBudget(1.0))

    assert result.status == "stopped"
    assert result.stop_reason == "CostBudget(1.0) reached: $1.2000 spent"
    assert backend.calls() == 2
    assert result.usage.cost == pytest.approx(1.2)


async def test_request_budget_allows_exactly_n_calls() -> None:
    backend = _numbered()

    result = await _ping_pong().run("t", backend=backend, until=accord.RequestBudget(4))

    assert result.status == "stopped"
    assert result.stop_reason == "RequestBudget(4) reached: 4 calls made"
    assert backend.calls() == 4
    assert result.usage.requests == 4


async def test_request_budget_holds_for_concurrent_calls() -> None:
    backend = ScriptedBackend({"a": ["x"], "b": ["y"]}, delay=0.01)
    g = accord.Graph("pair").add(accord.Agent("a"), accord.Agent("b"))

    result = await g.run("t", backend=backend, until=accord.RequestBudget(1))

    assert backend.calls() == 1
    assert result.status == "stopped"


async def test_until_stops_on_the_first_matching_message() -> None:
    done = accord.Until(lambda m: m.text == "con 1", name="con's second word")

    result = await _ping_pong().run("t", backend=_numbered(), until=done)

    assert result.status == "stopped"
    assert result.stop_reason == "Until(con's second word) satisfied by 'con'"
    assert result.transcript[-1].text == "con 1"
    assert len(result.transcript) == 4


async def test_conditions_or_stops_on_whichever_fires_first() -> None:
    until = accord.MaxSteps(10) | accord.RequestBudget(3) | accord.Timeout(30)

    result = await _ping_pong().run("t", backend=_numbered(), until=until)

    assert result.stop_reason == "RequestBudget(3) reached: 3 calls made"
    assert repr(until) == "MaxSteps(10) | RequestBudget(3) | Timeout(30)"
    assert until.deadline_s() == 30


async def test_conditions_and_stops_only_when_both_hold() -> None:
    until = accord.MaxSteps(2) & accord.Until(lambda m: m.sender == "con", name="con spoke")

    result = await _ping_pong().run("t", backend=_numbered(), until=until)

    assert [m.text for m in result.transcript] == ["pro 0", "con 0"]
    assert result.stop_reason == "MaxSteps(2) reached & Until(con spoke) satisfied by 'con'"

    later = accord.MaxSteps(3) & accord.Until(lambda m: m.sender == "con", name="con spoke")
    result = await _ping_pong().run("t", backend=_numbered(), until=later)

    assert len(result.transcript) == 4


async def test_condition_instance_serves_many_runs() -> None:
    until = accord.MaxSteps(2)

    first = await _ping_pong().run("t", backend=_numbered(), until=until)
    second = await _ping_pong().run("t", backend=_numbered(), until=until)

    assert len(first.transcript) == len(second.transcript) == 2


async def test_custom_condition_sees_the_run_snapshot() -> None:
    seen: list[tuple[int, str]] = []

    class StopAtCon(Condition):
        def after_message(self, run: RunSnapshot) -> str | None:
            assert run.last is not None
            seen.append((run.steps, run.last.sender))
            return "con answered" if run.last.sender == "con" else None

    result = await _ping_pong().run("t", backend=_numbered(), until=StopAtCon())

    assert result.stop_reason == "con answered"
    assert seen == [(1, "pro"), (2, "con")]


async def test_stopped_run_reports_run_finished_with_its_reason() -> None:
    events: list[object] = []

    await _ping_pong().run(
        "t", backend=_numbered(), until=accord.MaxSteps(1), on_event=events.append
    )

    last = events[-1]
    assert last.kind == "run_finished"  # type: ignore[attr-defined]
    assert last.status == "stopped"  # type: ignore[attr-defined]
    assert last.stop_reason == "MaxSteps(1) reached"  # type: ignore[attr-defined]
