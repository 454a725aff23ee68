"""vote: majority vote with extractors, weights, deterministic ties and clear failures."""

from __future__ import annotations

import pytest

from accord.backends.base import Choice
from accord.ensemble import Candidates, tally, vote
from accord.errors import ConfigError, EnsembleError
from accord.messages import Message, Solution


async def test_vote_counts_numbers_written_in_different_ways() -> None:
    result = await vote(["Answer: 4", "so x = 5", "4.0", "#### 4", "1,000"], extract="number")
    assert result.answer == "4"
    assert result.counts == {"4": 3.0, "5": 1.0, "1000": 1.0}
    assert result.index == 0 and result.winners == (0, 2, 3)
    assert result.support == pytest.approx(3 / 5)
    assert result.to_payload().answer == "4"


async def test_vote_tie_goes_to_the_answer_seen_first() -> None:
    result = await vote(["B", "A", "A", "B"], extract="exact")
    assert result.answer == "B"
    assert set(result.tied) == {"A", "B"}
    smallest = await vote(["B", "A", "A", "B"], extract="exact", tie_break="smallest")
    assert smallest.answer == "A"


async def test_vote_weights_can_outvote_a_majority() -> None:
    result = await vote(["a", "b", "b"], extract="exact", weights=[3, 1, 1])
    assert result.answer == "a"
    assert result.counts == {"a": 3.0, "b": 2.0}


async def test_vote_weighted_tie_is_broken_by_the_number_of_votes() -> None:
    result = await vote(["a", "b", "b"], extract="exact", weights=[2, 1, 1])
    assert result.answer == "b"
    assert result.tied == ("b",) or result.tied == ()


async def test_vote_unparsable_candidates_abstain() -> None:
    result = await vote(["no idea", "Answer: 7", "???"], extract="number")
    assert result.answer == "7"
    assert result.unparsable == (0, 2)
    assert result.support == 1.0


async def test_vote_with_no_candidates_raises_ensemble_error() -> None:
    with pytest.raises(EnsembleError, match="no candidates"):
        await vote([])


async def test_vote_with_only_unparsable_candidates_raises_or_falls_back() -> None:
    with pytest.raises(EnsembleError, match="none of the 2 candidates"):
        await vote(["none", "nothing"], extract="number")
    result = await vote(["none", "nothing"], extract="number", default="unknown")
    assert result.fallback and result.answer == "unknown" and result.index == -1
    assert result.unparsable == (0, 1)


async def test_vote_rejects_weights_that_do_not_match() -> None:
    with pytest.raises(ConfigError, match="2 weights"):
        await vote(["a", "b", "c"], weights=[1, 2])
    with pytest.raises(ConfigError, match="non-negative"):
        await vote(["a"], weights=[-1])


async def test_vote_reads_messages_payloads_choices_and_candidate_lists() -> None:
    message = Message(id="m", run_id="r", sender="s", text="Answer: 2")
    result = await vote(
        [message, Solution(answer="3"), Choice(text="2"), Candidates(texts=["3", "3"])],
        extract="number",
    )
    assert result.counts == {"2": 2.0, "3": 3.0}
    assert result.answer == "3"


async def test_vote_reports_an_extractor_that_raises() -> None:
    def broken(text: str) -> str | None:
        raise ValueError("boom")

    with pytest.raises(EnsembleError, match="extractor raised on candidate 0"):
        await vote(["x"], extract=broken)


async def test_vote_choice_extractor_reads_letters_in_context() -> None:
    result = await vote(
        ["The answer is (B).", "B", "I would say Answer: C", "(b) maybe", "Answer: B"],
        extract="choice",
    )
    assert result.answer == "B"
    assert result.counts == {"B": 3.0, "C": 1.0}
    assert result.unparsable == (3,)


def test_tally_is_the_synchronous_form() -> None:
    assert tally(["x", "y", "x"], extract="exact").answer == "x"
    with pytest.raises(ConfigError, match="unknown answer extractor"):
        tally(["x"], extract="numbers")


async def test_self_consistency_reads_numbers_by_default_for_a_numeric_question() -> None:
    import accord
    from accord.ensemble import self_consistency
    from accord.testing import ScriptedBackend

    backend = ScriptedBackend(
        {
            "solver_0": ["the solution to 17 * 24 is 408"],
            "solver_1": ["17 * 24 = 408.\nAnswer: 408"],
            "solver_2": ["Answer: 407"],
        }
    )
    graph = self_consistency(accord.Solver("solver"), k=3)
    result = await graph.run("What is 17 * 24?", backend=backend)
    assert result.output is not None and isinstance(result.output.payload, accord.Vote)
    assert result.output.payload.counts == {"408": 2.0, "407": 1.0}
    assert result.output.metadata["extract"] == "number"
    assert result.output.metadata["tie"] == "false"


async def test_self_consistency_reports_a_tie_instead_of_settling_it_silently() -> None:
    import json

    import accord
    from accord.ensemble import self_consistency
    from accord.testing import ScriptedBackend

    backend = ScriptedBackend({"solver_0": ["Answer: 4"], "solver_1": ["Answer: 5"]})
    graph = self_consistency(accord.Solver("solver"), k=2)
    result = await graph.run("What is 2 + 2?", backend=backend)
    assert result.output is not None
    assert result.output.metadata["tie"] == "true"
    assert set(json.loads(result.output.metadata["tied"])) == {"4", "5"}


async def test_self_consistency_names_the_samples_without_an_answer() -> None:
    import accord
    from accord.ensemble import self_consistency
    from accord.testing import ScriptedBackend

    backend = ScriptedBackend(
        {"solver_0": ["Answer: 4"], "solver_1": ["no idea"], "solver_2": ["Answer: 4"]}
    )
    result = await self_consistency(accord.Solver("solver"), k=3).run(
        "How many legs has a dog?", backend=backend
    )
    assert result.output is not None and result.output.metadata["unparsable"] == "solver_1"
