"""critique_revise(check=...): a check on every draft that ends the loop when it passes, and whose
report reaches both the critic and the solver."""

from __future__ import annotations

import pytest

import accord
from accord.errors import ConfigError
from accord.testing import ScriptedBackend

pytestmark = pytest.mark.usefixtures("no_real_backends")

REJECT = '{"approved": false, "issues": ["name the edge case"]}'


def _prompts(backend: ScriptedBackend, agent: str) -> list[str]:
    return [r.messages[-1].content for r in backend.requests if r.agent == agent]


def _tests(passing: set[str]) -> accord.Step:
    """A check that passes exactly the drafts in ``passing``."""

    @accord.step(thread=True)
    def tests(draft: str) -> accord.Verdict:
        if draft in passing:
            return accord.Verdict(accepted=True)
        return accord.Verdict(accepted=False, reasons=[f"sort([3, 1]) failed on {draft!r}"])

    return tests


async def test_critique_revise_check_report_reaches_critic_and_solver() -> None:
    backend = ScriptedBackend({"solver": ["d1", "d2"], "critic": [REJECT]})
    g = accord.critique_revise(
        accord.Solver("solver"), accord.Critic("critic"), max_rounds=3, check=_tests({"d2"})
    )

    result = await g.run("write sort", backend)

    assert result.text == "d2"
    senders = [m.sender for m in result.transcript]
    assert senders == ["solver", "tests", "critic", "solver", "tests", "critic"]
    critic_prompt = _prompts(backend, "critic")[0]
    assert '<message from="solver" round="0">\nd1' in critic_prompt  # the draft
    assert "sort([3, 1]) failed on 'd1'" in critic_prompt  # and the check's report
    revision = _prompts(backend, "solver")[1]
    assert "name the edge case" in revision  # the critique
    assert "sort([3, 1]) failed on 'd1'" in revision  # and the check's concrete reasons
    critique = result.transcript[2]
    assert isinstance(critique.payload, accord.Critique) and not critique.payload.approved


async def test_critique_revise_check_that_passes_first_skips_the_critic() -> None:
    backend = ScriptedBackend({"solver": ["good"], "critic": []})
    g = accord.critique_revise(
        accord.Solver("solver"), accord.Critic("critic"), check=_tests({"good"})
    )

    result = await g.run("write sort", backend)

    assert result.text == "good"
    assert backend.calls("critic") == 0 and backend.calls("solver") == 1
    assert [m.sender for m in result.transcript] == ["solver", "tests", "critic"]
    assert result.transcript[-1].text == "Not reviewed: the check 'tests' passed this draft."


@pytest.mark.parametrize("max_rounds", [1, 3])
async def test_critique_revise_check_never_passing_bounds_the_drafts(max_rounds: int) -> None:
    backend = ScriptedBackend({"solver": ["d"] * 5, "critic": [REJECT] * 5})
    g = accord.critique_revise(
        accord.Solver("solver"), accord.Critic("critic"), max_rounds=max_rounds, check=_tests(set())
    )

    result = await g.run("write sort", backend)

    assert backend.calls("solver") == max_rounds  # max_rounds drafts, i.e. max_rounds - 1 revisions
    assert backend.calls("critic") == max_rounds
    assert [m.sender for m in result.transcript].count("tests") == max_rounds
    assert result.text == "d"


async def test_critique_revise_critic_approval_does_not_end_the_loop_while_the_check_fails() -> (
    None
):
    backend = ScriptedBackend({"solver": ["d1", "d2"], "critic": ['{"approved": true}']})
    g = accord.critique_revise(
        accord.Solver("solver"), accord.Critic("critic"), max_rounds=3, check=_tests({"d2"})
    )
    result = await g.run("write sort", backend)
    assert result.text == "d2" and backend.calls("solver") == 2


async def test_critique_revise_check_without_critic_loops_check_to_solver() -> None:
    backend = ScriptedBackend({"solver": ["d1", "d2", "d3", "d4"]})
    g = accord.critique_revise(accord.Solver("solver"), None, max_rounds=3, check=_tests({"d3"}))

    result = await g.run("write sort", backend)

    assert result.text == "d3"
    assert [m.sender for m in result.transcript] == ["solver", "tests"] * 3
    assert "sort([3, 1]) failed on 'd2'" in _prompts(backend, "solver")[2]


async def test_critique_revise_check_without_critic_stops_at_max_rounds() -> None:
    backend = ScriptedBackend({"solver": ["d"] * 5})
    g = accord.critique_revise(accord.Solver("solver"), None, max_rounds=3, check=_tests(set()))
    await g.run("write sort", backend)
    assert backend.calls("solver") == 3


async def test_critique_revise_check_may_return_a_critique() -> None:
    @accord.step
    def lint(draft: str) -> accord.Critique:
        return accord.Critique(approved=draft == "clean", issues=["line too long"])

    backend = ScriptedBackend({"solver": ["messy", "clean"]})
    g = accord.critique_revise(accord.Solver("solver"), None, check=lint)
    result = await g.run("x", backend)
    assert result.text == "clean"
    assert "line too long" in _prompts(backend, "solver")[1]


def test_critique_revise_rejects_a_check_without_a_verdict_and_a_missing_critic() -> None:
    @accord.step
    def echo(draft: str) -> str:
        return draft

    with pytest.raises(ConfigError, match="must produce Verdict or Critique"):
        accord.critique_revise(accord.Solver("s"), accord.Critic("c"), check=echo)
    with pytest.raises(ConfigError, match="needs a critic, a check, or both"):
        accord.critique_revise(accord.Solver("s"), None)
    with pytest.raises(ConfigError, match="max_rounds must be 1 or more"):
        accord.critique_revise(accord.Solver("s"), accord.Critic("c"), max_rounds=0)
