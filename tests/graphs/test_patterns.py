"""The cooperation patterns, driven by ScriptedBackend: who speaks when, what each agent sees,
early stops, bounds, votes and judges."""

from __future__ import annotations

import pytest

import accord
from accord.errors import ConfigError
from accord.graphs.patterns import DebateRound, extract_answer
from accord.testing import ScriptedBackend

pytestmark = pytest.mark.usefixtures("store_mode")


def _last_prompt(backend: ScriptedBackend, agent: str) -> str:
    return [r for r in backend.requests if r.agent == agent][-1].messages[-1].content


async def test_debate_debaters_see_only_the_others_previous_answers() -> None:
    backend = ScriptedBackend(
        {
            "d0": ["Answer: 4", "Answer: 5"],
            "d1": ["Answer: 5", "Answer: 5"],
            "d2": ["Answer: 6", "Answer: 5"],
        }
    )
    g = accord.debate([accord.Debater(f"d{i}") for i in range(3)], rounds=3)
    result = await g.run("2+3?", backend)
    second = _last_prompt(backend, "d0")
    assert '<message from="d1" round="0">\nAnswer: 5' in second
    assert '<message from="d2" round="0">\nAnswer: 6' in second
    assert 'from="d0"' not in second  # its own answer is in its memory, not shown as another's
    assert [m.sender for m in result.transcript] == [
        "d0",
        "d1",
        "d2",
        "moderator",
        "d0",
        "d1",
        "d2",
        "moderator",
        "vote",
    ]


async def test_debate_stops_early_when_all_agree() -> None:
    backend = ScriptedBackend({"*": ["The answer is 5.\nAnswer: 5"] * 3})
    result = await accord.debate([accord.Debater(f"d{i}") for i in range(3)], rounds=3).run(
        "2+3?", backend
    )
    assert backend.calls() == 3
    assert result.output is not None and isinstance(result.output.payload, accord.Vote)
    assert result.output.payload.answer == "5"


async def test_debate_respects_the_round_bound_without_consensus() -> None:
    backend = ScriptedBackend({"a": ["Answer: 1"] * 2, "b": ["Answer: 2"] * 2})
    g = accord.debate([accord.Debater("a"), accord.Debater("b")], rounds=2)
    result = await g.run("?", backend)
    assert backend.calls("a") == 2 and backend.calls("b") == 2
    rounds = [m.payload for m in result.transcript if isinstance(m.payload, DebateRound)]
    assert [r.round for r in rounds] == [0, 1] and rounds[-1].last and rounds[-1].consensus is None


async def test_debate_vote_takes_the_majority_of_the_final_round() -> None:
    backend = ScriptedBackend({"a": ["Answer: 7"], "b": ["Answer: 9"], "c": ["Answer: 9"]})
    g = accord.debate([accord.Debater(n) for n in "abc"], rounds=1)
    result = await g.run("?", backend)
    assert result.output is not None and result.output.payload == accord.Vote(
        answer="9", counts={"7": 1.0, "9": 2.0}
    )


async def test_debate_with_a_judge_ends_with_the_judges_answer() -> None:
    backend = ScriptedBackend(
        {
            "a": ["Answer: 7"],
            "b": ["Answer: 9"],
            "judge": ['{"answer": "9", "reasoning": "b is right"}'],
        }
    )
    g = accord.debate(
        [accord.Debater("a"), accord.Debater("b")], rounds=1, aggregate=accord.Judge("judge")
    )
    result = await g.run("?", backend)
    assert result.output is not None and result.output.sender == "judge"
    assert isinstance(result.output.payload, accord.Answer) and result.output.payload.answer == "9"
    judge_prompt = _last_prompt(backend, "judge")
    assert "Answer: 7" in judge_prompt and "Answer: 9" in judge_prompt


async def test_debate_debaters_may_use_different_backends() -> None:
    one = ScriptedBackend({"a": ["Answer: 1"]})
    two = ScriptedBackend({"b": ["Answer: 1"]})
    g = accord.debate([accord.Debater("a", one), accord.Debater("b", two)], rounds=2)
    result = await g.run("?")
    assert one.calls() == 1 and two.calls() == 1
    assert result.output is not None and result.output.payload.answer == "1"  # type: ignore[union-attr]


def test_debate_rejects_bad_arguments_with_clear_errors() -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        accord.debate([accord.Debater("solo")])
    with pytest.raises(ConfigError, match="unique names"):
        accord.debate([accord.Debater("x"), accord.Debater("x")])
    with pytest.raises(ConfigError, match="rounds must be 1 or more"):
        accord.debate([accord.Debater("x"), accord.Debater("y")], rounds=0)


async def test_critique_revise_stops_when_the_critic_approves() -> None:
    replies = {
        "solver": ["draft 1", "draft 2"],
        "critic": ['{"approved": false, "issues": ["too long"]}', '{"approved": true}'],
    }
    backend = ScriptedBackend(replies)
    result = await accord.critique_revise(accord.Solver("solver"), accord.Critic("critic")).run(
        "haiku", backend
    )
    assert result.text == "draft 2"
    assert [m.sender for m in result.transcript] == ["solver", "critic", "solver", "critic"]
    assert "too long" in _last_prompt(backend, "solver")


async def test_critique_revise_stops_at_max_rounds() -> None:
    backend = ScriptedBackend(
        {"solver": ["d1", "d2"], "critic": ['{"approved": false, "issues": ["no"]}'] * 2}
    )
    g = accord.critique_revise(accord.Solver("solver"), accord.Critic("critic"), max_rounds=2)
    result = await g.run("x", backend)
    assert result.text == "d2" and backend.calls("solver") == 2 and backend.calls("critic") == 2


def test_critique_revise_requires_a_critic_that_produces_critique() -> None:
    with pytest.raises(ConfigError, match="must produce Critique"):
        accord.critique_revise(accord.Solver("s"), accord.Agent("c"))


async def test_plan_solve_verify_sends_rejections_back_to_the_solver() -> None:
    backend = ScriptedBackend(
        {
            "planner": ['{"steps": ["read", "add"]}'],
            "solver": ["s1", "s2"],
            "verifier": ['{"accepted": false, "reasons": ["wrong sum"]}', '{"accepted": true}'],
        }
    )
    g = accord.plan_solve_verify(
        accord.Planner("planner"), accord.Solver("solver"), accord.Verifier("verifier")
    )
    result = await g.run("add", backend)
    assert result.text == "s2"
    assert [m.sender for m in result.transcript] == [
        "planner",
        "solver",
        "verifier",
        "solver",
        "verifier",
    ]
    assert "wrong sum" in _last_prompt(backend, "solver")
    first_solver_prompt = (
        [r for r in backend.requests if r.agent == "solver"][0].messages[-1].content
    )
    assert "1. read" in first_solver_prompt


async def test_plan_solve_verify_accepts_a_step_as_verifier_and_bounds_rounds() -> None:
    @accord.step
    def verifier(solution: str) -> accord.Verdict:
        return accord.Verdict(accepted=False, reasons=[f"{solution} fails"])

    backend = ScriptedBackend({"planner": ['{"steps": ["x"]}'], "solver": ["a", "b"]})
    g = accord.plan_solve_verify(
        accord.Planner("planner"), accord.Solver("solver"), verifier, max_rounds=2
    )
    result = await g.run("t", backend)
    assert backend.calls("solver") == 2 and result.text == "b"


async def test_plan_solve_verify_with_critic_reviews_before_verifying() -> None:
    backend = ScriptedBackend(
        {
            "planner": ['{"steps": ["x"]}'],
            "solver": ["a", "b"],
            "critic": ['{"approved": false, "issues": ["vague"]}', '{"approved": true}'],
            "verifier": ['{"accepted": true}'],
        }
    )
    g = accord.plan_solve_verify(
        accord.Planner("planner"),
        accord.Solver("solver"),
        accord.Verifier("verifier"),
        critic=accord.Critic("critic"),
    )
    result = await g.run("t", backend)
    assert [m.sender for m in result.transcript] == [
        "planner",
        "solver",
        "critic",
        "solver",
        "critic",
        "verifier",
    ]
    assert result.text == "b"


async def test_mixture_of_agents_layers_see_the_previous_layer() -> None:
    backend = ScriptedBackend(
        {"a@0": ["A0"], "b@0": ["B0"], "a@1": ["A1"], "b@1": ["B1"], "agg": ["final"]}
    )
    g = accord.mixture_of_agents(
        [accord.Agent("a"), accord.Agent("b")], accord.Aggregator("agg"), layers=2
    )
    result = await g.run("q", backend)
    assert result.text == "final"
    layer1 = _last_prompt(backend, "a@1")
    assert "A0" in layer1 and "B0" in layer1
    final = _last_prompt(backend, "agg")
    assert "A1" in final and "B1" in final and "A0" not in final


async def test_round_robin_speakers_take_turns_and_see_the_whole_conversation() -> None:
    backend = ScriptedBackend({"a": ["a1", "a2"], "b": ["b1"]})
    g = accord.round_robin([accord.Agent("a"), accord.Agent("b")], max_turns=3)
    result = await g.run("topic", backend)
    speakers = [m.sender for m in result.transcript if m.sender != "manager"]
    assert speakers == ["a", "b", "a"] and result.text == "a2"
    assert "a1" in _last_prompt(backend, "a") and "b1" in _last_prompt(backend, "a")


async def test_round_robin_stop_when_ends_the_chat() -> None:
    backend = ScriptedBackend({"a": ["go on"], "b": ["DONE"]})
    g = accord.round_robin(
        [accord.Agent("a"), accord.Agent("b")], max_turns=10, stop_when=lambda m: "DONE" in m.text
    )
    result = await g.run("t", backend)
    assert result.text == "DONE" and backend.calls() == 2


async def test_selector_chat_function_chooses_the_speaker() -> None:
    backend = ScriptedBackend({"a": ["a1"], "b": ["b1", "b2"]})

    def pick(turns: list[accord.Message], names: list[str]) -> str:
        return "b" if len(turns) != 1 else "a"

    g = accord.selector_chat([accord.Agent("a"), accord.Agent("b")], pick, max_turns=3)
    result = await g.run("t", backend)
    assert [m.sender for m in result.transcript if m.sender != "manager"] == ["b", "a", "b"]


async def test_selector_chat_agent_with_invalid_reply_falls_back_to_turn_order() -> None:
    backend = ScriptedBackend({"sel": ["nobody", "b please"], "a": ["a1"], "b": ["b1"]})
    g = accord.selector_chat(
        [accord.Agent("a"), accord.Agent("b")], accord.Agent("sel"), max_turns=2
    )
    result = await g.run("t", backend)
    assert [m.sender for m in result.transcript if m.sender != "manager"] == ["a", "b"]
    assert result.usage_by_agent["manager"].requests == 2  # the selector's calls count


async def test_selector_chat_function_returning_unknown_name_is_a_usage_error() -> None:
    g = accord.selector_chat([accord.Agent("a")], lambda turns, names: "zed", max_turns=2)
    with pytest.raises(ConfigError, match="not a speaker"):
        await g.run("t", ScriptedBackend({}))


async def test_judge_panel_combines_verdicts_by_majority() -> None:
    backend = ScriptedBackend(
        {"j0": ['{"answer": "A"}'], "j1": ['{"answer": "B"}'], "j2": ['{"answer": "A"}']}
    )
    g = accord.judge_panel([accord.Judge(f"j{i}") for i in range(3)])
    result = await g.run("Which is better, A or B?", backend)
    assert result.output is not None and result.output.payload.answer == "a"  # type: ignore[union-attr]


async def test_patterns_respect_run_budgets() -> None:
    backend = ScriptedBackend({"*": ["Answer: 1", "Answer: 2"] * 4})
    g = accord.debate([accord.Debater(f"d{i}") for i in range(3)], rounds=3)
    result = await g.run("?", backend, until=accord.RequestBudget(2))
    assert result.status == "stopped" and backend.calls() == 2


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        ("Reasoning...\nAnswer: 42", "42"),
        ("so the answer is 1,000.0 then", "1000"),
        ("so 1,000.0 it is", ""),
        ("**Final answer: B**", "b"),
        ("", ""),
    ],
)
def test_extract_answer_normalises_common_forms(text: str, answer: str) -> None:
    assert extract_answer(text) == answer
