"""Majority vote and self-consistency's aggregation step.

Self-consistency (Wang et al., "Self-Consistency Improves Chain of Thought Reasoning in Language
Models", ICLR 2023, arXiv 2203.11171) samples several reasoning paths and returns the most common
final answer; the same count over answers from several models is a plain majority vote. Each
candidate's answer is read by an extractor (see :mod:`accord.ensemble._extract`), optionally
weighted, and counted.

Ties are resolved deterministically: most weight, then most votes, then (``tie_break="first"``,
the default) the answer that appeared first among the candidates, or (``"smallest"``) the
smallest answer as a string. Caveat: on a sharp, deterministic task greedy decoding already picks
the mode, and votes over samples at temperature > 0 can lose to it (accord's offline testbed saw
this on three-digit addition); prefer sample-then-verify when a checker exists.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from accord.ensemble._candidates import Candidate, candidate_texts
from accord.ensemble._extract import Extractor, resolve_extractor
from accord.ensemble._results import VoteResult
from accord.errors import ConfigError, EnsembleError

__all__ = ["vote", "tally", "TieBreak"]

TieBreak = Literal["first", "smallest"]


def _check_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    if weights is None:
        return [1.0] * n
    values = [float(w) for w in weights]
    if len(values) != n:
        raise ConfigError(
            f"vote got {n} candidates but {len(values)} weights; give one weight per candidate."
        )
    bad = [w for w in values if not math.isfinite(w) or w < 0]
    if bad:
        raise ConfigError(f"vote weights must be finite and non-negative, got {bad[0]!r}.")
    return values


def tally(
    texts: Sequence[str],
    *,
    extract: str | Extractor | None = None,
    weights: Sequence[float] | None = None,
    tie_break: TieBreak = "first",
    default: str | None = None,
) -> VoteResult:
    """Count the answers of ``texts`` (no model calls; :func:`vote` is the async form).

    Args:
        texts: the candidates' texts.
        extract: an extractor name (``"number"``, ``"choice"``, ``"code"``, ``"text"``,
            ``"exact"``) or function; ``"text"`` when None.
        weights: one non-negative weight per candidate (all 1 when None).
        tie_break: ``"first"`` (earliest answer wins a tie) or ``"smallest"``.
        default: returned (``fallback=True``) when no candidate has a usable answer.

    Raises:
        EnsembleError: there are no candidates, or none has a usable answer and no default was
            given, or the extractor raised.
        ConfigError: bad weights or tie rule.
    """
    if tie_break not in ("first", "smallest"):
        raise ConfigError(f"tie_break must be 'first' or 'smallest', not {tie_break!r}.")
    reader = resolve_extractor(extract)
    values = _check_weights(weights, len(texts))
    counts: dict[str, float] = {}
    votes: dict[str, int] = {}
    first: dict[str, int] = {}
    unparsable: list[int] = []
    answers: list[str | None] = []
    for i, text in enumerate(texts):
        try:
            answer = reader(text)
        except Exception as exc:
            raise EnsembleError(
                f"the answer extractor raised on candidate {i} ({type(exc).__name__}: {exc}). "
                "An extractor must return None for text it cannot read."
            ) from exc
        answers.append(answer)
        if answer is None or values[i] == 0:
            if answer is None:
                unparsable.append(i)
            continue
        counts[answer] = counts.get(answer, 0.0) + values[i]
        votes[answer] = votes.get(answer, 0) + 1
        first.setdefault(answer, i)
    if not counts:
        if default is not None:
            return VoteResult(
                answer=default,
                counts={},
                index=-1,
                text=default,
                unparsable=tuple(unparsable),
                fallback=True,
            )
        why = (
            "there are no candidates"
            if not texts
            else f"none of the {len(texts)} candidates has an answer the extractor can read"
            + (" (or every usable one has weight 0)" if len(unparsable) < len(texts) else "")
        )
        raise EnsembleError(
            f"vote cannot pick an answer: {why}. Check the extractor, or pass default=... to "
            "get a fallback answer instead of this error."
        )
    best_weight = max(counts.values())
    top = [a for a in counts if math.isclose(counts[a], best_weight, rel_tol=1e-9, abs_tol=1e-12)]
    if len(top) > 1:
        most = max(votes[a] for a in top)
        top = [a for a in top if votes[a] == most]
    if tie_break == "first":
        winner = min(top, key=lambda a: first[a])
    else:
        winner = min(top)
    index = first[winner]
    total = sum(counts.values())
    return VoteResult(
        answer=winner,
        counts=counts,
        index=index,
        text=texts[index],
        winners=tuple(i for i, a in enumerate(answers) if a == winner and values[i] > 0),
        tied=tuple(top) if len(top) > 1 else (),
        unparsable=tuple(unparsable),
        support=counts[winner] / total if total else 0.0,
    )


async def vote(
    candidates: Sequence[Candidate],
    *,
    extract: str | Extractor | None = None,
    weights: Sequence[float] | None = None,
    tie_break: TieBreak = "first",
    default: str | None = None,
) -> VoteResult:
    """Majority vote over candidate answers (self-consistency when they are samples).

    Args:
        candidates: strings, messages, payloads or choices (see :mod:`._candidates`).
        extract: how to read each answer: ``"number"``, ``"choice"``, ``"code"``, ``"text"``
            (the default), ``"exact"``, or a function ``(text) -> str | None``.
        weights: one non-negative weight per candidate (e.g. each model's accuracy).
        tie_break: ``"first"`` (the earliest answer wins a tie) or ``"smallest"``.
        default: the answer to return, with ``fallback=True``, when no candidate is usable.

    Returns:
        The winning answer, the counts, and which candidates gave it.

    Raises:
        EnsembleError: no usable candidate and no default.
        ConfigError: weights that do not match the candidates, or are negative.

    Example::

        result = await vote(["x = 4. Answer: 4", "Answer: 5", "Answer: 4.0"], extract="number")
        assert result.answer == "4" and result.counts == {"4": 2.0, "5": 1.0}
    """
    return tally(
        candidate_texts(candidates),
        extract=extract,
        weights=weights,
        tie_break=tie_break,
        default=default,
    )
