"""Best-of-n: sample n answers, keep the one a reward function or a judge scores highest.

ŷ = argmax_i V(x, y_i), with V a reward function (a test runner, a checker, a reward model) or an
LLM judge that rates each answer from 0 to 10 (Cobbe et al., "Training Verifiers to Solve Math
Word Problems", arXiv 2110.14168; Lightman et al., "Let's Verify Step by Step", arXiv 2305.20050).
Candidates are given, or sampled from a solver: one call with ``n`` samples when the backend
returns several candidates per call, else ``n`` concurrent calls with seeds ``seed, seed+1, ...``.

Caveat: a candidate the judge's reply gives no score for (unreadable reply) ranks below every
scored one; when no candidate gets a score the call fails with :class:`EnsembleError`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from accord.ensemble._calls import Ledger, Model, ModelLike, as_model, ask
from accord.ensemble._candidates import Candidate, candidate_texts
from accord.ensemble._fanout import fan_out
from accord.ensemble._judging import parse_score, render_rating
from accord.ensemble._results import Selection, select_best
from accord.errors import ConfigError, EnsembleError
from accord.messages import Critique, Verdict

__all__ = ["best_of_n", "Reward", "SetReward", "sample", "judge_scores"]

Reward = Callable[..., Any]
"""``reward(candidate)`` or ``reward(task, candidate)`` -> a score (higher is better), sync or
async: a number, True/False (1/0), a ``Verdict`` (accepted: 1) or ``Critique``, or None
(unscored). An ``@accord.step`` node works too (a test runner returning a ``Verdict``): its
function is called, in a worker thread when the step says ``thread=True``."""

SetReward = Callable[..., Any]
"""``set_reward(candidates)`` or ``set_reward(task, candidates)`` -> one score per candidate,
in order, seeing all candidates at once: agreement between candidates (a cluster of answers that
behave the same, a majority) can count. Sync, async or an ``@accord.step`` like a reward."""


async def _apply_reward(reward: Any, task: str, texts: list[str]) -> list[float | None]:
    from accord.agents import Step

    scores: list[float | None] = []
    for i, text in enumerate(texts):
        try:
            value = await Step.invoke(reward, task, text)
        except ConfigError:
            raise
        except Exception as exc:
            raise EnsembleError(
                f"the reward function raised on candidate {i} ({type(exc).__name__}: {exc}). "
                "Return a low score (or None) for a bad candidate instead of raising."
            ) from exc
        scores.append(_as_score(value))
    return scores


async def _apply_set_reward(reward: Any, task: str, texts: list[str]) -> list[float | None]:
    from accord.agents import Step

    try:
        values = await Step.invoke(reward, task, list(texts))
    except ConfigError:
        raise
    except Exception as exc:
        raise EnsembleError(
            f"the set reward raised ({type(exc).__name__}: {exc}). Return low scores (or None) "
            "for bad candidates instead of raising."
        ) from exc
    try:
        scores = [_as_score(v) for v in values]
    except (TypeError, ValueError) as exc:
        raise EnsembleError(
            f"the set reward must return one score per candidate, got {values!r:.200}."
        ) from exc
    if len(scores) != len(texts):
        raise EnsembleError(
            f"the set reward returned {len(scores)} scores for {len(texts)} candidates; return "
            "one per candidate, in order."
        )
    return scores


def _as_score(value: Any) -> float | None:
    """A reward's value as a float: numbers and bools as they are, a Verdict as 1/0, a Critique
    as its score (else 1/0 by approval), text parsed like a judge's reply."""
    if value is None:
        return None
    if isinstance(value, Verdict):
        return 1.0 if value.accepted else 0.0
    if isinstance(value, Critique):
        return value.score if value.score is not None else 1.0 if value.approved else 0.0
    if isinstance(value, str):
        return parse_score(value)
    return float(value)


def _schema_for(judge: ModelLike) -> str:
    """The JSON schema a Verdict or Critique judge agent answers in ('' for other judges)."""
    from accord.agents import Agent

    produces = judge.produces if isinstance(judge, Agent) else None
    if produces is Verdict or produces is Critique:
        return json.dumps(produces.model_json_schema(), separators=(",", ":"))
    return ""


async def judge_scores(
    judge: ModelLike,
    task: str,
    texts: Sequence[str],
    ledger: Ledger,
    *,
    through_run: bool = True,
) -> list[float | None]:
    """Ask an LLM judge to rate each text (0-10 scaled to 0-1), concurrently.

    A judge agent whose output is ``Verdict`` or ``Critique`` is asked for that JSON instead;
    an accepted verdict scores 1, a rejected one 0.
    """
    model = as_model(judge, default_name="judge", role="judge")
    schema = _schema_for(judge)
    replies = await fan_out(
        ask(
            model,
            model.request(render_rating(task, t, schema=schema)),
            ledger,
            through_run=through_run,
        )
        for t in texts
    )
    return [parse_score(c.text) for c in replies]


async def sample(
    solver: Model, task: str, n: int, ledger: Ledger, *, temperature: float, seed: int | None
) -> list[str]:
    """``n`` answers from ``solver``: one call asking for ``n`` when its backend can, else ``n``."""
    backend = solver.backend
    if backend is not None and backend.capabilities.n and n > 1:
        completion = await ask(
            solver, solver.request(task, n=n, temperature=temperature, seed=seed), ledger
        )
        texts = [c.text for c in completion.choices]
        if len(texts) >= n:
            return texts[:n]
    completions = await fan_out(
        ask(
            solver,
            solver.request(task, temperature=temperature, seed=None if seed is None else seed + i),
            ledger,
        )
        for i in range(n)
    )
    return [c.text for c in completions]


async def best_of_n(
    task: str,
    candidates: Sequence[Candidate] | None = None,
    *,
    solver: ModelLike | None = None,
    n: int = 4,
    temperature: float = 0.7,
    seed: int | None = None,
    reward: Reward | None = None,
    set_reward: SetReward | None = None,
    judge: ModelLike | None = None,
) -> Selection:
    """Keep the best of ``n`` answers by a reward function or an LLM judge.

    Args:
        task: the task the answers address.
        candidates: the answers; when None, ``n`` are sampled from ``solver``.
        solver: an Agent, backend or name to sample from.
        n: how many to sample.
        temperature: sampling temperature.
        seed: first sampling seed (each sample gets its own), None for unseeded.
        reward: ``reward(candidate)`` or ``reward(task, candidate)`` -> score, one candidate
            at a time.
        set_reward: ``set_reward(task, candidates)`` -> a score per candidate, all at once
            (see :data:`SetReward`; :func:`~accord.ensemble.checked_reward` is one).
        judge: an LLM judge (Agent, backend or name) rating each candidate.

    Returns:
        A :class:`~accord.ensemble.Selection` (``method="best_of_n"``); ``usage`` counts the
        sampling and judge calls. Ties keep the earliest candidate.

    Raises:
        ConfigError: not exactly one of reward, set_reward and judge; neither candidates nor
            solver; n < 1.
        EnsembleError: no candidates, or no candidate could be scored.
    """
    if sum(x is not None for x in (reward, set_reward, judge)) != 1:
        raise ConfigError("best_of_n needs exactly one of reward=..., set_reward=... or judge=....")
    ledger = Ledger()
    if candidates is None:
        if solver is None:
            raise ConfigError("best_of_n needs candidates, or a solver to sample them from.")
        if n < 1:
            raise ConfigError(f"best_of_n needs n >= 1, got {n}.")
        model = as_model(solver, default_name="solver", role="solver")
        texts = await sample(model, task, n, ledger, temperature=temperature, seed=seed)
    else:
        texts = candidate_texts(candidates)
    if not texts:
        raise EnsembleError("best_of_n got no candidates to choose from.")
    if reward is not None:
        scores = await _apply_reward(reward, task, texts)
    elif set_reward is not None:
        scores = await _apply_set_reward(set_reward, task, texts)
    else:
        scores = await judge_scores(judge, task, texts, ledger)
    scored = [i for i, s in enumerate(scores) if s is not None]
    if not scored:
        raise EnsembleError(
            f"best_of_n could not score any of the {len(texts)} candidates: the "
            + (
                "reward function returned None for all."
                if reward is not None or set_reward is not None
                else "judge's replies held no score."
            )
        )
    return select_best("best_of_n", texts, scores, scored, ledger.usage, ledger.elapsed())
