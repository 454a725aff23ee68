"""mbr, best_of_n, pairwise_rank and fuse on hand-made candidates with known answers."""

from __future__ import annotations

import re

import pytest

import accord
from accord.backends.base import Request
from accord.ensemble import (
    best_of_n,
    chrf,
    fuse,
    judge_utility,
    mbr,
    pairwise_rank,
    token_f1,
)
from accord.errors import ConfigError, EnsembleError
from accord.testing import FunctionBackend, ScriptedBackend

# ------------------------------------------------------------------------ utilities and MBR


def test_utilities_score_identity_one_and_disjoint_zero() -> None:
    assert chrf("the cat", "the cat") == pytest.approx(1.0)
    assert chrf("abc", "xyz") == 0.0
    assert 0 < chrf("the cat sat", "the cat sits") < 1
    assert token_f1("The cat!", "cat the") == pytest.approx(1.0)
    assert token_f1("a b", "c d") == 0.0
    assert token_f1("", "") == 1.0


async def test_mbr_picks_the_candidate_closest_to_the_others() -> None:
    candidates = [
        "a dog ran away",
        "the cat sat on the mat",
        "the cat sat on a mat",
        "the cat is on the mat",
    ]
    result = await mbr(candidates, utility="chrf")
    assert result.index == 1
    assert result.scores[0] is not None and result.scores[1] is not None
    assert result.scores[0] < result.scores[1]
    assert result.ranking[-1] == 0
    assert result.usage.requests == 0


async def test_mbr_exact_match_counts_duplicates_and_ties_keep_the_earliest() -> None:
    result = await mbr(["x", "y", "x"], utility="exact")
    assert result.index == 0 and result.scores == (0.5, 0.0, 0.5)
    tie = await mbr(["a", "b"], utility="exact")
    assert tie.index == 0


async def test_mbr_single_candidate_is_returned_and_empty_raises() -> None:
    one = await mbr(["only"])
    assert one.index == 0 and one.scores == (None,)
    with pytest.raises(EnsembleError, match="no candidates"):
        await mbr([])
    with pytest.raises(EnsembleError, match="no candidate has a usable answer"):
        await mbr(["none", "here"], extract="number")


async def test_mbr_with_an_llm_judge_makes_one_call_per_ordered_pair() -> None:
    def judge(request: Request) -> str:
        numbers = re.findall(r"<answer_\d>\n(.*?)\n</answer_\d>", request.messages[-1].content)
        return "10" if len(set(numbers)) == 1 else "0"

    backend = FunctionBackend(judge)
    result = await mbr(["4", "5", "4"], utility=judge_utility(backend), task="2+2?")
    assert result.index == 0
    assert result.usage.requests == 6 == backend.calls()
    assert "2+2?" in backend.requests[0].messages[-1].content


async def test_mbr_rejects_an_unknown_utility() -> None:
    with pytest.raises(ConfigError, match="unknown utility"):
        await mbr(["a"], utility="bleu")


# ------------------------------------------------------------------------------ best of n


async def test_best_of_n_keeps_the_highest_reward_and_the_earliest_on_ties() -> None:
    result = await best_of_n("task", ["1", "3", "3", "2"], reward=lambda c: float(c))
    assert result.index == 1 and result.text == "3"
    assert result.ranking == (1, 2, 3, 0)


async def test_best_of_n_reward_may_read_the_task_and_be_a_verdict_step() -> None:
    @accord.step
    def run_tests(task: str, candidate: str) -> accord.Verdict:
        return accord.Verdict(accepted=candidate == task.upper())

    result = await best_of_n("abc", ["abc", "ABC", "Abc"], reward=run_tests)
    assert result.index == 1 and result.scores == (0.0, 1.0, 0.0)


async def test_best_of_n_samples_from_a_solver_and_scores_with_a_judge() -> None:
    backend = ScriptedBackend(
        {"solver": ["draft a", "draft b", "draft c"], "judge": ["3", "Score: 9/10", "7"]}
    )
    result = await best_of_n(
        "write", solver=accord.Agent("solver", backend), n=3, seed=10, judge=backend
    )
    assert result.text == "draft b" and result.scores == (0.3, 0.9, 0.7)
    assert result.usage.requests == 6 and result.calls == 6
    seeds = [r.seed for r in backend.requests if r.agent == "solver"]
    assert seeds == [10, 11, 12]
    assert all(r.temperature == 0.7 for r in backend.requests if r.agent == "solver")


async def test_best_of_n_unreadable_judge_replies_rank_last_or_fail() -> None:
    backend = ScriptedBackend({"judge": ["no opinion", "4", "I cannot say"]})
    result = await best_of_n("t", ["a", "b", "c"], judge=backend)
    assert result.index == 1 and result.scores == (None, 0.4, None)
    assert result.ranking == (1, 0, 2)
    silent = ScriptedBackend({"judge": ["hmm", "hmm"]})
    with pytest.raises(EnsembleError, match="could not score any"):
        await best_of_n("t", ["a", "b"], judge=silent)


async def test_best_of_n_verifier_agent_is_asked_for_its_json() -> None:
    backend = ScriptedBackend({"verifier": ['{"accepted": false}', '{"accepted": true}']})
    result = await best_of_n("t", ["a", "b"], judge=accord.Verifier("verifier", backend))
    assert result.index == 1
    assert '"accepted"' in backend.requests[0].messages[-1].content


async def test_best_of_n_needs_candidates_and_exactly_one_scorer() -> None:
    with pytest.raises(EnsembleError, match="no candidates"):
        await best_of_n("t", [], reward=len)
    with pytest.raises(ConfigError, match="exactly one"):
        await best_of_n("t", ["a"])
    with pytest.raises(EnsembleError, match="reward function raised"):
        await best_of_n("t", ["a"], reward=lambda c: 1 / 0)


# -------------------------------------------------------------------------- pairwise rank


def _bigger_number_judge(request: Request) -> str:
    prompt = request.messages[-1].content
    a = int(re.search(r"<response_a>\n(.*?)\n</response_a>", prompt, re.S).group(1))  # type: ignore[union-attr]
    b = int(re.search(r"<response_b>\n(.*?)\n</response_b>", prompt, re.S).group(1))  # type: ignore[union-attr]
    return "A" if a > b else "B"


async def test_pairwise_rank_by_wins_orders_candidates_by_the_judge() -> None:
    backend = FunctionBackend(_bigger_number_judge)
    result = await pairwise_rank("biggest?", ["2", "9", "5"], judge=backend)
    assert result.ranking == (1, 2, 0)
    assert result.scores == (0.0, 2.0, 1.0)
    assert backend.calls() == 6 == result.usage.requests


async def test_pairwise_rank_both_orders_cancel_a_position_biased_judge() -> None:
    backend = FunctionBackend(lambda request: "A")
    result = await pairwise_rank("t", ["x", "y", "z"], judge=backend)
    assert result.scores == (1.0, 1.0, 1.0)
    assert result.index == 0
    one_order = await pairwise_rank("t", ["x", "y", "z"], judge=backend, both_orders=False)
    assert one_order.scores == (2.0, 1.0, 0.0)


async def test_pairwise_rank_bubble_pass_finds_the_best_in_linear_calls() -> None:
    backend = FunctionBackend(_bigger_number_judge)
    result = await pairwise_rank("t", ["3", "1", "8", "4"], judge=backend, aggregate="bubble")
    assert result.index == 2 and result.ranking[0] == 2
    assert backend.calls() == 6


async def test_pairwise_rank_unclear_replies_split_the_pair_and_empty_raises() -> None:
    backend = FunctionBackend(lambda request: "Both are fine: A and B.")
    result = await pairwise_rank("t", ["x", "y"], judge=backend)
    assert result.scores == (0.5, 0.5)
    with pytest.raises(EnsembleError, match="no candidates"):
        await pairwise_rank("t", [], judge=backend)
    with pytest.raises(ConfigError, match="aggregate"):
        await pairwise_rank("t", ["x"], judge=backend, aggregate="maxlogits")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- fuse


async def test_fuse_shows_the_top_candidates_in_ranking_order() -> None:
    backend = ScriptedBackend({"aggregator": ["fused answer"]})
    result = await fuse(
        "task", ["c0", "c1", "c2", "c3"], aggregator=backend, top=2, ranking=[3, 1, 0, 2]
    )
    assert result.text == "fused answer" and result.sources == (3, 1)
    prompt = backend.requests[0].messages[-1].content
    assert prompt.index("c3") < prompt.index("c1") and "c0" not in prompt
    assert result.usage.requests == 1


async def test_fuse_uses_an_aggregator_agents_template_and_rejects_empty_answers() -> None:
    backend = ScriptedBackend({"agg": ["  "]})
    agent = accord.Aggregator("agg", backend)
    with pytest.raises(EnsembleError, match="empty answer"):
        await fuse("task", ["one", "two"], aggregator=agent)
    request = backend.requests[0]
    assert "Synthesise" in request.messages[-1].content
    assert request.messages[0].role == "system"
    with pytest.raises(EnsembleError, match="no candidates"):
        await fuse("task", [], aggregator=agent)
