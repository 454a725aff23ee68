"""Evaluation helpers of the ensemble benchmark: each method on the held-out problems, timed.

Every function takes the problems as ``(a, b)`` pairs, asks through accord's public objects
(``HFBackend``, ``Agent``, ``self_consistency``, ``vote``, ``TokenEnsemble``, ``Cascade``) with
the prompt ``aaa+bbb=`` rendered by the models' chat template as ``<s>aaa+bbb=``, and returns
a :class:`Measured` (answers, accuracy, wall time, model calls). Caveat: wall times depend on
the machine's load; the benchmark runs one torch thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from _ensembles_train import answer_of, prompt_of

import accord
from accord.backends.base import ChatMessage, Request
from accord.ensemble import Candidates, Cascade, Stage, TokenEnsemble, self_consistency, tally

__all__ = [
    "Measured",
    "request_for",
    "greedy",
    "sampled_vote",
    "vote_across",
    "token_ensemble",
    "cascade",
]

MAX_TOKENS = 5  # four digits and EOS


@dataclass
class Measured:
    """One method's answers on the problems, and what they cost."""

    name: str
    answers: list[str]
    seconds: float
    calls: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def accuracy(self, problems: Sequence[tuple[int, int]]) -> float:
        good = sum(a == answer_of(x, y) for a, (x, y) in zip(self.answers, problems, strict=True))
        return good / len(problems)


def request_for(a: int, b: int, **options: Any) -> Request:
    return Request(
        messages=(ChatMessage(role="user", content=prompt_of(a, b)),),
        max_tokens=MAX_TOKENS,
        **options,
    )


async def _gather_limited(jobs: Sequence[Callable[[], Awaitable[Any]]], limit: int) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[Any]]) -> Any:
        async with semaphore:
            return await job()

    return list(await asyncio.gather(*(one(j) for j in jobs)))


async def greedy(name: str, backend: Any, problems: Sequence[tuple[int, int]]) -> Measured:
    """Each problem asked greedily; concurrent requests batch in the backend."""
    started = time.perf_counter()
    jobs = [lambda a=a, b=b: backend.complete(request_for(a, b)) for a, b in problems]
    completions = await _gather_limited(jobs, 64)
    tokens = sum(c.usage.prompt_tokens + c.usage.completion_tokens for c in completions)
    return Measured(
        name,
        [c.text for c in completions],
        time.perf_counter() - started,
        len(completions),
        {"tokens": tokens},
    )


async def sampled_vote(
    name: str, backend: Any, problems: Sequence[tuple[int, int]], k: int, seed: int
) -> Measured:
    """``self_consistency(agent, k)`` per problem: k samples at temperature 0.7 in one call
    (``samples="n"``), seed ``seed + 1000 * index``, then an exact-answer vote."""
    agent = accord.Agent("solver", backend, template="{{ task }}", max_tokens=MAX_TOKENS)
    started = time.perf_counter()
    answers: list[str] = []
    any_right = 0
    sample_right = 0
    calls = 0
    for index, (a, b) in enumerate(problems):
        graph = self_consistency(
            agent, k, temperature=0.7, seed=seed + 1000 * index, extract="exact", samples="n"
        )
        result = await graph.run(prompt_of(a, b))
        answers.append(result.output.payload.answer if result.output else "")  # type: ignore[union-attr]
        calls += result.usage.requests
        samples = next(m.payload for m in result.transcript if isinstance(m.payload, Candidates))
        assert isinstance(samples, Candidates)
        truth = answer_of(a, b)
        right = sum(t.strip() == truth for t in samples.texts)
        sample_right += right
        any_right += right > 0
    n = len(problems)
    return Measured(
        name,
        answers,
        time.perf_counter() - started,
        calls,
        {"per_sample": sample_right / (n * k), "pass_at_k": any_right / n},
    )


def vote_across(name: str, members: Sequence[Measured]) -> Measured:
    """A majority vote over the members' greedy answers (ties: the first member's answer)."""
    started = time.perf_counter()
    answers = []
    ties = 0
    for texts in zip(*(m.answers for m in members), strict=True):
        result = tally(list(texts), extract="exact", default="")
        answers.append(result.answer)
        ties += bool(result.tied)
    seconds = time.perf_counter() - started + sum(m.seconds for m in members)
    return Measured(name, answers, seconds, sum(m.calls for m in members), {"ties": ties})


async def token_ensemble(
    name: str, ensemble: TokenEnsemble, problems: Sequence[tuple[int, int]], concurrency: int = 4
) -> Measured:
    """The ensemble answers each problem through its backend interface (greedy)."""
    started = time.perf_counter()
    combined = steps = prompt_tokens = 0
    forwards: list[int] = [0] * len(ensemble.models)

    async def one(a: int, b: int) -> str:
        nonlocal combined, steps, prompt_tokens
        out = await ensemble.generate(request_for(a, b), max_tokens=MAX_TOKENS)
        combined += out.combined_steps
        steps += out.steps
        prompt_tokens += out.usage.prompt_tokens
        for i, f in enumerate(out.forwards):
            forwards[i] += f
        return out.text

    jobs = [lambda a=a, b=b: one(a, b) for a, b in problems]
    answers = await _gather_limited(jobs, concurrency)
    return Measured(
        name,
        answers,
        time.perf_counter() - started,
        len(problems),
        {
            "combined": combined / steps if steps else 0.0,
            "forwards": forwards,
            "prompt_tokens": prompt_tokens,
            "steps": steps,
        },
    )


async def cascade(
    name: str,
    cheap: Any,
    strong: Any,
    prices: tuple[tuple[float, float], tuple[float, float]],
    threshold: float,
    problems: Sequence[tuple[int, int]],
) -> Measured:
    """A two-stage cascade scored by the cheap model's mean token probability. ``prices`` are
    (prompt, completion) prices per million tokens of each stage."""
    runner = Cascade(
        [
            Stage(cheap, threshold=threshold, price=prices[0], name="small"),
            Stage(strong, price=prices[1], name="strong"),
        ],
        scorer="logprob",
    )
    started = time.perf_counter()
    jobs = [lambda a=a, b=b: runner.run(request_for(a, b)) for a, b in problems]
    results = await _gather_limited(jobs, 64)
    cost = sum(r.cost for r in results)
    direct = sum(r.direct_cost for r in results)
    return Measured(
        name,
        [r.text for r in results],
        time.perf_counter() - started,
        sum(r.usage.requests for r in results),
        {
            "escalated": sum(r.stage == 1 for r in results) / len(results),
            "cost": cost,
            "direct_cost": direct,
        },
    )
