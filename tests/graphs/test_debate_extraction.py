"""debate(): answers are read from their explicit markers, for the consensus stop and the vote."""

from __future__ import annotations

import accord
from accord.graphs.patterns import DebateRound
from accord.testing import ScriptedBackend


def rounds_of(result: accord.RunResult) -> list[DebateRound]:
    return [m.payload for m in result.transcript if isinstance(m.payload, DebateRound)]


async def test_debate_reads_the_marked_answer_not_the_last_number() -> None:
    reasoning = "Reasoning: 17*24 = 340 + 68."
    backend = ScriptedBackend(
        {
            "a": [f"I think the answer is 408. {reasoning}"] * 2,
            "b": [f"I think the answer is 408. {reasoning}"] * 2,
            "c": [f"I think the answer is 407. {reasoning}", "Answer: 408"],
        }
    )
    graph = accord.debate([accord.Debater(n) for n in "abc"], rounds=3)
    result = await graph.run("What is 17 * 24?", backend)
    first, second = rounds_of(result)
    assert [p.answer for p in first.positions] == ["408", "408", "407"]
    assert first.consensus is None and second.consensus == "408"
    assert result.output is not None and result.output.payload.answer == "408"  # type: ignore[union-attr]


async def test_debate_replies_without_an_answer_never_reach_consensus() -> None:
    code = "def f(x):\n    if x < 0:\n        return -1\n    return 0\n"
    backend = ScriptedBackend({"*": [code] * 6})
    graph = accord.debate([accord.Debater(n) for n in "ab"], rounds=3)
    result = await graph.run("Write f.", backend)
    debate_rounds = rounds_of(result)
    assert len(debate_rounds) == 3  # no false consensus on "0" or "-1"
    assert all(r.consensus is None and r.no_answer == ["a", "b"] for r in debate_rounds)
    assert result.output is not None and result.output.payload.answer == ""  # type: ignore[union-attr]
    assert result.output.metadata["no_answer"] == "a,b"


async def test_debate_extract_chooses_how_code_answers_are_compared() -> None:
    same = "```python\ndef f(x):\n    return abs(x)\n```"
    other = "```python\ndef f(x):\n    return x if x > 0 else -x\n```"
    backend = ScriptedBackend({"a": [same, same], "b": [other, same]})
    graph = accord.debate([accord.Debater(n) for n in "ab"], rounds=3, extract="code")
    result = await graph.run("Write f.", backend)
    first, second = rounds_of(result)
    assert first.consensus is None
    assert second.consensus == "def f(x):\n    return abs(x)" and second.last
    assert result.output is not None
    assert result.output.payload.answer == "def f(x):\n    return abs(x)"  # type: ignore[union-attr]


async def test_debater_and_solver_prompts_ask_for_a_final_answer_line() -> None:
    backend = ScriptedBackend({"*": ["Answer: 4"] * 6})
    graph = accord.debate([accord.Debater(n) for n in "ab"], rounds=2)
    await graph.run("What is 2 + 2?", backend)
    solver = accord.self_consistency(accord.Solver("s"), k=1)
    await solver.run("What is 2 + 2?", backend)
    prompts = [r.messages[-1].content for r in backend.requests]
    assert len(prompts) == 3
    assert all('"Answer: <your final answer>"' in p for p in prompts)
