"""Minimum Bayes risk (MBR) selection: the candidate that agrees most with all the others.

With hypotheses H pooled from one or several models and a utility u, MBR returns
argmax_{y in H} sum_{y' in H, y' != y} w(y') u(y, y') (Kumar and Byrne, "Minimum Bayes-Risk
Decoding for Statistical Machine Translation", HLT-NAACL 2004; used over LLM samples by e.g.
Bertsch et al., "It's MBR All the Way Down", arXiv 2310.01387). The score reported per candidate
is that weighted average agreement. It costs |H|(|H|-1) utility calls, run concurrently.

Caveat: candidates whose answer the extractor cannot read take no part (they neither win nor
count as references); with a single usable candidate, it is returned with score None.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

from accord.ensemble._calls import Ledger
from accord.ensemble._candidates import Candidate, candidate_texts
from accord.ensemble._extract import Extractor, resolve_extractor
from accord.ensemble._fanout import fan_out
from accord.ensemble._results import Selection, select_best
from accord.ensemble._utility import LLMUtility, Utility, resolve_utility
from accord.errors import ConfigError, EnsembleError

__all__ = ["mbr"]


async def _pair_value(utility: Utility, hyp: str, ref: str) -> float:
    value = utility(hyp, ref)
    if inspect.isawaitable(value):
        value = await value
    return float(value)


async def mbr(
    candidates: Sequence[Candidate],
    *,
    utility: str | Utility = "chrf",
    extract: str | Extractor | None = "exact",
    weights: Sequence[float] | None = None,
    task: str = "",
) -> Selection:
    """Pick the candidate with the highest expected utility against the others.

    Args:
        candidates: strings, messages, payloads or choices.
        utility: ``"exact"``, ``"token_f1"``, ``"chrf"`` (default), a function
            ``(hypothesis, reference) -> float`` (sync or async), or
            :func:`~accord.ensemble.judge_utility` for an LLM judge.
        extract: what the utility compares: an extractor name or function applied to each
            candidate first (``"exact"`` by default: the stripped text).
        weights: one non-negative weight per candidate, for its role as a reference.
        task: the task, shown to an LLM-judge utility.

    Returns:
        A :class:`~accord.ensemble.Selection` (``method="mbr"``); ``scores`` are expected
        utilities, ``usage`` is what an LLM utility spent.

    Raises:
        EnsembleError: no candidate has a usable answer.
        ConfigError: an unknown utility or extractor, or weights that do not match.
    """
    ledger = Ledger()
    texts = candidate_texts(candidates)
    reader = resolve_extractor(extract)
    fn = resolve_utility(utility)
    if isinstance(fn, LLMUtility) and not fn.task:
        fn.task = task
    if weights is not None and len(weights) != len(texts):
        raise ConfigError(f"mbr got {len(texts)} candidates but {len(weights)} weights.")
    w = [float(x) for x in weights] if weights is not None else [1.0] * len(texts)
    if any(x < 0 for x in w):
        raise ConfigError("mbr weights must be non-negative.")
    answers = [reader(t) for t in texts]
    usable = [i for i, a in enumerate(answers) if a is not None]
    if not usable:
        raise EnsembleError(
            "mbr cannot pick a candidate: "
            + ("there are no candidates." if not texts else "no candidate has a usable answer.")
            + " Check the extractor, or give candidates."
        )
    scores: list[float | None] = [None] * len(texts)
    if len(usable) > 1:
        pairs = [(i, j) for i in usable for j in usable if i != j]
        values = await fan_out(
            (_pair_value(fn, answers[i] or "", answers[j] or "") for i, j in pairs)
        )
        total: dict[int, float] = dict.fromkeys(usable, 0.0)
        mass: dict[int, float] = dict.fromkeys(usable, 0.0)
        for (i, j), value in zip(pairs, values, strict=True):
            total[i] += w[j] * value
            mass[i] += w[j]
        for i in usable:
            scores[i] = total[i] / mass[i] if mass[i] > 0 else 0.0
    if isinstance(fn, LLMUtility):
        ledger.usage = ledger.usage + fn.ledger.usage
    return select_best("mbr", texts, scores, usable, ledger.usage, ledger.elapsed())
