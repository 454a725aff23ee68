"""Cascade: escalation by score, the cost ledger, and its three uses (run, node, backend)."""

from __future__ import annotations

import pytest
from conftest import NBackend

import accord
from accord.ensemble import Cascade, Stage
from accord.errors import ConfigError
from accord.testing import ScriptedBackend

PRICE_CHEAP = (1.0, 2.0)
PRICE_DEAR = (10.0, 20.0)


def _cost(price: tuple[float, float], prompt: int, completion: int) -> float:
    return (prompt * price[0] + completion * price[1]) / 1e6


async def test_cascade_escalates_a_low_score_and_the_last_stage_answers() -> None:
    backend = ScriptedBackend({"small": ["maybe 5"], "large": ["exactly 4"]})
    cascade = Cascade(
        [
            Stage(backend, threshold=0.8, price=PRICE_CHEAP, name="small"),
            Stage(backend, price=PRICE_DEAR, name="large"),
        ],
        scorer=lambda task, answer: 0.3,
    )
    result = await cascade.run("2+2?")
    assert result.text == "exactly 4" and result.stage == 1 and result.stage_name == "large"
    assert [s.accepted for s in result.stages] == [False, True]
    assert result.stages[0].score == 0.3 and result.stages[1].score is None
    small, large = (s.usage for s in result.stages)
    assert result.usage.requests == 2
    assert result.cost == pytest.approx(
        _cost(PRICE_CHEAP, small.prompt_tokens, small.completion_tokens)
        + _cost(PRICE_DEAR, large.prompt_tokens, large.completion_tokens)
    )
    assert not result.direct_estimated and result.direct_usage == large
    assert result.saving is not None and result.saving < 0


async def test_cascade_accepts_a_confident_cheap_answer_and_estimates_the_saving() -> None:
    backend = ScriptedBackend({"small": ["4"]})
    cascade = Cascade(
        [
            Stage(backend, threshold=0.8, price=PRICE_CHEAP, name="small"),
            Stage(backend, price=PRICE_DEAR, name="large"),
        ],
        scorer=lambda task, answer: 0.9,
    )
    result = await cascade.run("2+2?")
    assert result.stage == 0 and result.text == "4" and backend.calls("large") == 0
    used = result.stages[0].usage
    assert result.direct_estimated
    assert result.direct_usage.prompt_tokens == used.prompt_tokens
    assert result.direct_cost == pytest.approx(
        _cost(PRICE_DEAR, used.prompt_tokens, used.completion_tokens)
    )
    assert result.saving == pytest.approx(0.9)


async def test_cascade_logprob_scorer_uses_the_answers_token_probabilities() -> None:
    confident = NBackend(lambda r, i: "four", name="confident", logprob=-0.01)
    unsure = NBackend(lambda r, i: "five or six", name="unsure", logprob=-2.0)
    cascade = Cascade([Stage(unsure, threshold=0.5), Stage(confident)])
    result = await cascade.run("2+2?")
    assert result.stage == 1
    assert result.stages[0].score == pytest.approx(0.1353, abs=1e-3)
    assert result.stages[1].score == pytest.approx(0.990, abs=1e-3)
    assert unsure.requests[0].logprobs


async def test_cascade_last_stage_needs_no_logprobs() -> None:
    unsure = NBackend(lambda r, i: "five or six", name="unsure", logprob=-2.0)
    plain = ScriptedBackend({"stage_1": ["four"]})
    result = await Cascade([Stage(unsure, threshold=0.5), plain]).run("2+2?")
    assert result.text == "four" and result.stages[1].score is None


async def test_cascade_verifier_scores_and_unreadable_replies_escalate() -> None:
    backend = ScriptedBackend(
        {
            "a": ["x"],
            "b": ["y"],
            "c": ["z"],
            "verifier": ["I am not sure", '{"accepted": true, "reasons": []}'],
        }
    )
    cascade = Cascade(
        [accord.Agent("a", backend), accord.Agent("b", backend), accord.Agent("c", backend)],
        scorer=accord.Verifier("verifier", backend),
        thresholds=[0.5, 0.5],
    )
    result = await cascade.run("task")
    assert result.stage == 1 and result.text == "y"
    assert [s.score for s in result.stages] == [None, 1.0]
    assert result.stages[0].usage.requests == 2  # answer + verifier
    assert backend.calls("c") == 0


async def test_cascade_as_a_node_records_the_stage_and_counts_in_the_run() -> None:
    backend = ScriptedBackend({"cheap": ["draft"], "dear": ["final"]})
    cascade = Cascade(
        [Stage(accord.Agent("cheap"), threshold=0.5), Stage(accord.Agent("dear"))],
        scorer=lambda task, answer: 0.0,
    )
    graph = accord.Graph("g").add(cascade)
    result = await graph.run("question", backend=backend)
    assert result.text == "final"
    assert result.output is not None
    assert result.output.metadata["stage"] == "1" and result.output.metadata["stage_name"] == "dear"
    assert result.usage.requests == 2


async def test_cascade_as_an_agents_backend_reports_its_whole_usage() -> None:
    backend = ScriptedBackend({"stage_0": ["weak"], "stage_1": ["strong"]})
    cascade = Cascade([backend, backend], thresholds=[0.5], scorer=lambda t, a: 0.1)
    graph = accord.Graph("g").add(accord.Agent("asker", cascade))
    result = await graph.run("question")
    assert result.text == "strong"
    assert result.usage.requests == 2


def test_cascade_rejects_missing_thresholds_and_logprobs_it_cannot_get() -> None:
    backend = ScriptedBackend({})
    with pytest.raises(ConfigError, match="no threshold"):
        Cascade([backend, backend], scorer=lambda t, a: 1.0)
    with pytest.raises(ConfigError, match="log-probabilities"):
        Cascade([Stage(backend, threshold=0.5), backend])
    with pytest.raises(ConfigError, match="at least one stage"):
        Cascade([])
