"""Pairwise ranking with an LLM judge, LLM-Blender style.

LLM-Blender's PairRanker (Jiang, Ren and Lin, ACL 2023, arXiv 2306.02561) compares candidates two
at a time and aggregates the comparison matrix. Here the comparer is an LLM judge asked "A or B?".
Each pair is asked in both orders (A/B and B/A) so the judge's preference for a position cancels:
a candidate earns 1 for a pair when it wins both orders, 1/2 when the orders disagree or a reply
is unreadable, 0 when it loses both.

Aggregation: ``"wins"`` (MaxWins) compares every pair, n(n-1) calls, and ranks by total wins;
``"bubble"`` makes one pass keeping the current best, 2(n-1) calls, and decides only the winner
(an even pair keeps the incumbent). Caveat: ties in wins keep the given order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from accord.ensemble._calls import Ledger, Model, ModelLike, as_model, ask
from accord.ensemble._candidates import Candidate, candidate_texts
from accord.ensemble._fanout import fan_out
from accord.ensemble._judging import parse_preference, render_pair
from accord.ensemble._results import Selection
from accord.errors import ConfigError, EnsembleError

__all__ = ["pairwise_rank", "Aggregate"]

Aggregate = Literal["wins", "bubble"]


async def _prefers(model: Model, task: str, a: str, b: str, ledger: Ledger) -> str | None:
    completion = await ask(model, model.request(render_pair(task, a, b)), ledger)
    return parse_preference(completion.text)


async def _share(
    model: Model, task: str, texts: list[str], i: int, j: int, both: bool, ledger: Ledger
) -> float:
    """Candidate i's share of the pair (i, j): 1, 1/2 or 0 (with both orders also 1/4, 3/4)."""
    if not both:
        first = await _prefers(model, task, texts[i], texts[j], ledger)
        return 1.0 if first == "A" else 0.0 if first == "B" else 0.5
    first, second = await fan_out(
        (
            _prefers(model, task, texts[i], texts[j], ledger),
            _prefers(model, task, texts[j], texts[i], ledger),
        )
    )
    share = 0.0
    share += 1.0 if first == "A" else 0.0 if first == "B" else 0.5
    share += 1.0 if second == "B" else 0.0 if second == "A" else 0.5
    return share / 2


async def pairwise_rank(
    task: str,
    candidates: Sequence[Candidate],
    *,
    judge: ModelLike,
    aggregate: Aggregate = "wins",
    both_orders: bool = True,
) -> Selection:
    """Rank candidates by pairwise comparisons with an LLM judge.

    Args:
        task: what the candidates answer (shown to the judge).
        candidates: strings, messages, payloads or choices.
        judge: an Agent, backend or ``"provider:model"`` name.
        aggregate: ``"wins"`` (all pairs) or ``"bubble"`` (one pass).
        both_orders: ask each pair as A/B and B/A (cancels position bias; doubles the calls).

    Returns:
        A :class:`~accord.ensemble.Selection` (``method="pairwise_rank"``); ``scores`` are wins
        (pairs won; for bubble, wins in the comparisons each candidate took part in).

    Raises:
        EnsembleError: no candidates.
        ConfigError: an unknown aggregation.
    """
    if aggregate not in ("wins", "bubble"):
        raise ConfigError(f"aggregate must be 'wins' or 'bubble', not {aggregate!r}.")
    texts = candidate_texts(candidates)
    if not texts:
        raise EnsembleError("pairwise_rank got no candidates to rank.")
    model = as_model(judge, default_name="judge", role="judge")
    ledger = Ledger()
    n = len(texts)
    wins = [0.0] * n
    if aggregate == "wins":
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
        shares = await fan_out(
            (_share(model, task, texts, i, j, both_orders, ledger) for i, j in pairs)
        )
        for (i, j), share in zip(pairs, shares, strict=True):
            wins[i] += share
            wins[j] += 1.0 - share
        ranking = tuple(sorted(range(n), key=lambda k: (-wins[k], k)))
    else:
        best = 0
        for challenger in range(1, n):
            share = await _share(model, task, texts, best, challenger, both_orders, ledger)
            wins[best] += share
            wins[challenger] += 1.0 - share
            if share < 0.5:
                best = challenger
        ranking = (best, *(k for k in range(n) if k != best))
    winner = ranking[0]
    return Selection(
        method="pairwise_rank",
        index=winner,
        text=texts[winner],
        candidates=tuple(texts),
        scores=tuple(wins),
        ranking=ranking,
        usage=ledger.usage,
        latency_s=ledger.elapsed(),
    )
