"""verified_search: greedy first, more samples only where checks fail, chosen by checks and
behaviour clusters; set-level rewards in best_of_n; @step(thread=True) honoured where steps are
called."""

from __future__ import annotations

import threading

import pytest

import accord
from accord.ensemble import VerifiedSearchNode, best_of_n, checked_reward, select_checked
from accord.errors import ConfigError, EnsembleError
from accord.testing import ScriptedBackend
from accord.verify import CheckResult, answer_checks, python_checks

TWO = '''def double(n):
    """Twice n.
    >>> double(2)
    4
    >>> double(0)
    0
    """
'''

ONE = '''def double(n):
    """Twice n.
    >>> double(2)
    4
    """
'''


def code(body: str) -> str:
    return f"```python\ndef double(n):\n    return {body}\n```"


RIGHT, ALSO_RIGHT = code("2 * n"), code("n + n")
SQUARE = code("n * n if n else 1")  # passes double(2) == 4 only
WRONG = code("n + 1")


def solver() -> accord.Agent:
    return accord.Agent("coder", template="{{ task }}\n{{ inputs }}", memory=False)


async def run(backend: ScriptedBackend, task: str = TWO, **options: object) -> accord.RunResult:
    graph = accord.verified_search(solver(), python_checks(), **options)  # type: ignore[arg-type]
    return await graph.run(task, backend=backend)


async def test_a_greedy_answer_that_passes_is_the_only_call() -> None:
    backend = ScriptedBackend({"search": [RIGHT]})
    result = await run(backend)
    assert result.text == RIGHT
    meta = result.output.metadata
    assert (meta["answers"], meta["stop"], meta["passed"], meta["total"]) == (
        "1",
        "verified",
        "2",
        "2",
    )
    assert backend.calls() == 1 and backend.requests[0].temperature == 0.0
    assert result.usage.requests == 1


async def test_samples_are_spent_only_until_one_passes() -> None:
    backend = ScriptedBackend({"search": [WRONG, SQUARE, RIGHT, RIGHT, RIGHT]})
    result = await run(backend, budget=5)
    assert result.text == RIGHT
    assert backend.calls() == 3
    assert [r.temperature for r in backend.requests] == [0.0, 0.8, 0.8]
    assert [r.seed for r in backend.requests] == [None, 1, 2]
    assert result.output.metadata["stop"] == "verified"
    assert result.usage.requests == 3


async def test_when_the_budget_runs_out_the_best_partial_answer_is_kept() -> None:
    backend = ScriptedBackend({"search": [WRONG, SQUARE, WRONG]})
    result = await run(backend, budget=3)
    assert backend.calls() == 3
    assert result.text == SQUARE  # 1 of 2 examples beats 0 of 2
    assert result.output.metadata["stop"] == "budget"
    assert result.output.metadata["passed"] == "1"


async def test_weak_checks_need_an_agreeing_second_answer() -> None:
    # one example is weak evidence: the greedy answer passes it, a second answer that behaves
    # the same on the probe inputs confirms it
    backend = ScriptedBackend({"search": [RIGHT, ALSO_RIGHT, RIGHT]})
    result = await run(backend, task=ONE, budget=4)
    assert backend.calls() == 2
    assert result.output.metadata["cluster"] == "2"
    assert result.output.metadata["stop"] == "verified"


async def test_clusters_break_ties_between_answers_that_pass() -> None:
    replies = [SQUARE, RIGHT, ALSO_RIGHT, WRONG]
    big = 1_000
    chosen = await run(
        ScriptedBackend({"search": replies}), task=ONE, budget=4, strong=big, agree=big
    )
    assert chosen.text == RIGHT  # the 2-answer cluster, not the earliest pass
    assert chosen.output.metadata["cluster"] == "2"
    earliest = await run(
        ScriptedBackend({"search": replies}),
        task=ONE,
        budget=4,
        strong=big,
        agree=big,
        select="checks",
    )
    assert earliest.text == SQUARE


async def test_a_repair_sees_the_concrete_failure() -> None:
    backend = ScriptedBackend({"search": [WRONG, RIGHT]})
    result = await run(backend, budget=1, repairs=1)
    assert result.text == RIGHT
    assert result.output.metadata["repairs"] == "1"
    prompt = backend.requests[1].messages[-1].content
    assert "double(2) should return 4, but it returned 3." in prompt
    assert WRONG in prompt
    assert backend.requests[1].temperature == 0.0


async def test_no_repair_when_an_answer_passes() -> None:
    backend = ScriptedBackend({"search": [RIGHT]})
    result = await run(backend, budget=1, repairs=2)
    assert backend.calls() == 1 and result.output.metadata["repairs"] == "0"


async def test_tester_calls_count_in_the_run() -> None:
    task = 'def double(n):\n    """Twice n."""\n'
    backend = ScriptedBackend(
        {
            "tester": ["```python\nassert double(3) == 6\nassert double(1) == 2\n```"],
            "search": [RIGHT, ALSO_RIGHT],
        }
    )
    graph = accord.verified_search(solver(), python_checks(tester=backend), budget=4)
    result = await graph.run(task, backend=backend)
    assert backend.calls("tester") == 1
    assert result.usage.requests == 3  # the tester and two answers that agree
    assert result.output.metadata["stop"] == "verified"


async def test_short_answers_with_a_checking_function() -> None:
    def plugs_in(answer: str) -> bool:  # x**2 - 5x + 6 = 0
        x = float(answer)
        return abs(x * x - 5 * x + 6) < 1e-9

    backend = ScriptedBackend({"search": ["Answer: 4", "x = 3. Answer: 3", "Answer: 2"]})
    graph = accord.verified_search(solver(), answer_checks(plugs_in), budget=4, strong=1)
    result = await graph.run("Solve x^2 - 5x + 6 = 0 for x.", backend=backend)
    assert result.text == "x = 3. Answer: 3"
    assert backend.calls() == 2


async def test_a_threaded_step_checker_runs_off_the_event_loop() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    @accord.step(thread=True)
    def check(task: str, answer: str) -> accord.Verdict:
        seen.append(threading.get_ident())
        return accord.Verdict(accepted="4" in answer)

    backend = ScriptedBackend({"search": ["Answer: 4"]})
    graph = accord.verified_search(solver(), check, budget=2, strong=1)
    result = await graph.run("2 + 2?", backend=backend)
    assert result.text == "Answer: 4"
    assert seen and all(t != loop_thread for t in seen)


async def test_best_of_n_threaded_step_reward_runs_off_the_event_loop() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    @accord.step(thread=True)
    def reward(answer: str) -> accord.Verdict:
        seen.append(threading.get_ident())
        return accord.Verdict(accepted=answer == "b")

    chosen = await best_of_n("pick", ["a", "b"], reward=reward)
    assert chosen.text == "b"
    assert len(seen) == 2 and loop_thread not in seen


@pytest.mark.parametrize(
    "options",
    [{"budget": 0}, {"batch": 0}, {"repairs": -1}, {"temperature": 0.0}, {"select": "vote"}],
)
def test_bad_options_are_config_errors(options: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        VerifiedSearchNode(solver(), python_checks(), **options)  # type: ignore[arg-type]


def test_a_check_that_is_not_callable_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="check must be a checker"):
        accord.verified_search(solver(), "run the tests")  # type: ignore[arg-type]


async def test_set_reward_sees_every_candidate() -> None:
    seen: list[list[str]] = []

    def agreement(task: str, texts: list[str]) -> list[float]:
        seen.append(texts)
        return [float(texts.count(t)) for t in texts]

    chosen = await best_of_n("q", ["x", "y", "y"], set_reward=agreement)
    assert chosen.index == 1 and seen == [["x", "y", "y"]]


async def test_set_reward_must_score_each_candidate_once() -> None:
    with pytest.raises(EnsembleError, match="returned 1 scores for 2 candidates"):
        await best_of_n("q", ["a", "b"], set_reward=lambda texts: [1.0])
    with pytest.raises(ConfigError, match="exactly one"):
        await best_of_n("q", ["a"], reward=len, set_reward=lambda texts: [1.0])


def test_selection_prefers_checks_then_agreement() -> None:
    results = [
        CheckResult(passed=1, total=2, signature="a"),
        CheckResult(passed=2, total=2, signature="b"),
        CheckResult(passed=2, total=2, signature="c"),
        CheckResult(passed=2, total=2, signature="c"),
        CheckResult(passed=2, total=2, weak_passed=3, signature="d"),
    ]
    scores = select_checked(results)
    assert max(range(5), key=lambda i: scores[i]) == 4  # weak tests passed x cluster size
    scores = select_checked(results[:4])
    assert scores[2] == scores[3] > scores[1] > scores[0]


async def test_checked_reward_in_self_consistency() -> None:
    backend = ScriptedBackend({"coder_0": [WRONG], "coder_1": [RIGHT], "coder_2": [ALSO_RIGHT]})
    graph = accord.self_consistency(solver(), k=3, set_reward=checked_reward(python_checks()))
    result = await graph.run(TWO, backend=backend)
    assert result.text == RIGHT
    assert result.output.metadata["method"] == "best_of_n"


async def test_a_threaded_step_scorer_in_a_cascade_runs_off_the_event_loop() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    @accord.step(thread=True)
    def score(task: str, answer: str) -> str:
        seen.append(threading.get_ident())
        return "0.9" if "4" in answer else "0.1"

    backend = ScriptedBackend({"small": ["5"], "large": ["4"]})
    threaded = accord.Cascade(
        [accord.Stage(backend, threshold=0.5, name="small"), accord.Stage(backend, name="large")],
        scorer=score,
    )
    result = await threaded.run("2+2?")
    assert result.text == "4" and result.stages[0].score == pytest.approx(0.1)
    assert seen and loop_thread not in seen


async def test_a_threaded_step_selector_picks_speakers_off_the_event_loop() -> None:
    loop_thread = threading.get_ident()
    seen: list[int] = []

    @accord.step(thread=True)
    def pick(turns: list[accord.Message], names: list[str]) -> str:
        seen.append(threading.get_ident())
        return "b"

    backend = ScriptedBackend({"b": ["b1", "b2"]})
    graph = accord.selector_chat([accord.Agent("a"), accord.Agent("b")], pick, max_turns=2)
    result = await graph.run("t", backend)
    assert [m.sender for m in result.transcript if m.sender != "manager"] == ["b", "b"]
    assert seen and loop_thread not in seen


async def test_an_answer_cut_at_the_token_limit_is_a_candidate_not_a_failure() -> None:
    from accord.errors import TruncatedOutputError

    cut = TruncatedOutputError("stopped at the token limit", partial_text="```python\ndef dou")
    backend = ScriptedBackend({"search": [cut, RIGHT]})
    result = await run(backend, budget=3)
    assert result.text == RIGHT and backend.calls() == 2
