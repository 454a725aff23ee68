"""Utilities for minimum-Bayes-risk selection: how much one answer agrees with another.

A utility is ``u(hypothesis, reference) -> float`` in [0, 1], plain or async. Built in:

- ``"exact"``: 1 when the two texts are equal after stripping, else 0;
- ``"token_f1"``: SQuAD-style bag-of-words F1 (lower case, punctuation dropped);
- ``"chrf"``: a chrF-like character n-gram F-score (Popović, "chrF: character n-gram F-score
  for automatic MT evaluation", WMT 2015): n = 1..6, spaces ignored, precision and recall
  averaged over n, then F-beta with beta = 2 (recall weighs more);
- :func:`judge_utility`: an LLM judge rates how much two answers agree (0-10, scaled to 0-1).

Caveat: chrF here is "chrF-like": it follows the paper's definition, not any one toolkit's
smoothing, so scores may differ slightly from sacreBLEU's.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Awaitable, Callable

from accord.ensemble._calls import Ledger, ModelLike, as_model, ask
from accord.ensemble._judging import parse_score, render_agreement
from accord.errors import ConfigError

__all__ = [
    "Utility",
    "UTILITIES",
    "resolve_utility",
    "exact_match",
    "token_f1",
    "chrf",
    "judge_utility",
    "LLMUtility",
]

Utility = Callable[[str, str], float | Awaitable[float]]
"""``u(hypothesis, reference)``: agreement in [0, 1] (may be async)."""

_PUNCT = str.maketrans("", "", string.punctuation)


def exact_match(hypothesis: str, reference: str) -> float:
    """1.0 when the texts are equal after stripping outer whitespace, else 0.0."""
    return 1.0 if hypothesis.strip() == reference.strip() else 0.0


def _words(text: str) -> list[str]:
    return text.casefold().translate(_PUNCT).split()


def token_f1(hypothesis: str, reference: str) -> float:
    """Bag-of-words F1 between the two texts (1.0 when both are empty)."""
    hyp, ref = _words(hypothesis), _words(reference)
    if not hyp or not ref:
        return 1.0 if hyp == ref else 0.0
    common = sum((Counter(hyp) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(hyp), common / len(ref)
    return 2 * precision * recall / (precision + recall)


_SPACE = re.compile(r"\s+")


def chrf(hypothesis: str, reference: str, *, max_n: int = 6, beta: float = 2.0) -> float:
    """Character n-gram F-score (spaces ignored), in [0, 1].

    Args:
        hypothesis: the text being scored.
        reference: the text it is compared with.
        max_n: longest n-gram.
        beta: recall weighs ``beta`` times as much as precision.
    """
    hyp, ref = _SPACE.sub("", hypothesis), _SPACE.sub("", reference)
    if not hyp or not ref:
        return 1.0 if hyp == ref else 0.0
    precisions: list[float] = []
    recalls: list[float] = []
    for n in range(1, max_n + 1):
        if len(hyp) < n or len(ref) < n:
            break
        h = Counter(hyp[i : i + n] for i in range(len(hyp) - n + 1))
        r = Counter(ref[i : i + n] for i in range(len(ref) - n + 1))
        matches = sum((h & r).values())
        precisions.append(matches / sum(h.values()))
        recalls.append(matches / sum(r.values()))
    precision = sum(precisions) / len(precisions)
    recall = sum(recalls) / len(recalls)
    if precision == 0 and recall == 0:
        return 0.0
    b2 = beta * beta
    return (1 + b2) * precision * recall / (b2 * precision + recall)


UTILITIES: dict[str, Utility] = {"exact": exact_match, "token_f1": token_f1, "chrf": chrf}
"""The built-in utilities by name."""


class LLMUtility:
    """A utility that asks an LLM judge how much two answers agree (see :func:`judge_utility`).

    Its ``ledger`` collects the cost of every call; MBR reads it into its result. An unreadable
    judge reply counts as 0 agreement.
    """

    def __init__(self, judge: ModelLike, *, task: str = "") -> None:
        self.model = as_model(judge, default_name="judge", role="judge")
        self.task = task
        self.ledger = Ledger()
        self.unreadable = 0
        """Replies that held no score (each counted as 0)."""

    async def __call__(self, hypothesis: str, reference: str) -> float:
        prompt = render_agreement(self.task, hypothesis, reference)
        completion = await ask(self.model, self.model.request(prompt), self.ledger)
        score = parse_score(completion.text)
        if score is None:
            self.unreadable += 1
            return 0.0
        return score


def judge_utility(judge: ModelLike, *, task: str = "") -> LLMUtility:
    """A utility backed by an LLM judge (an Agent, backend or ``"provider:model"`` name).

    Args:
        judge: who rates agreement.
        task: the task both answers address (shown to the judge; :func:`mbr` fills it in).
    """
    return LLMUtility(judge, task=task)


def resolve_utility(utility: str | Utility) -> Utility:
    """A utility from its name or a function.

    Raises:
        ConfigError: an unknown name.
    """
    if isinstance(utility, str):
        found = UTILITIES.get(utility)
        if found is None:
            raise ConfigError(
                f"unknown utility {utility!r}. Use one of "
                + ", ".join(repr(n) for n in UTILITIES)
                + ", judge_utility(judge), or a function (hypothesis, reference) -> float."
            )
        return found
    if not callable(utility):
        raise ConfigError(f"utility must be a name or a function, not {type(utility).__name__}.")
    return utility
