"""Cascade: ask the cheapest model first, and a dearer one only when the answer looks weak.

FrugalGPT (Chen, Zaharia and Zou, arXiv 2305.05176) orders models cheapest first; each answer is
scored and returned when the score clears that stage's threshold, else the next stage is asked.
The score here is one of

- ``"logprob"``: the geometric mean of the answer's token probabilities, exp(mean log p), from
  the stage's own log-probabilities (free; the backend must return logprobs);
- a verifier (an Agent or backend) asked to rate the answer 0-10 (a ``Verdict`` or ``Critique``
  agent is asked for its JSON; accepted scores 1);
- a function ``(task, answer) -> float`` (sync or async).

The last stage always answers; it is scored only when scoring is free, and needs no logprobs, so
it may be any backend (a :class:`~accord.ensemble.TokenEnsemble` included). The result records
every stage tried and what the whole run cost against asking the last stage directly (its real
cost when it was asked, else an estimate from the question's prompt tokens and the answer's
length at the last stage's price). Caveat: costs come from each completion's ``usage.cost`` (backends with
a price table) or, when that is 0, from the stage's ``price``; with neither, costs are 0 and only
tokens compare.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

from accord._log import get_logger
from accord.backends.base import Backend, Capabilities, Completion, Delta, Request
from accord.ensemble._best_of_n import judge_scores
from accord.ensemble._calls import Ledger, Model, ModelLike, as_model, ask
from accord.errors import ConfigError
from accord.messages import Payload, Usage
from accord.runtime import ActivationContext, Join, NodeOutput

__all__ = ["Stage", "Cascade", "CascadeResult", "StageResult", "Scorer"]

log = get_logger(__name__)

Scorer = Any
"""``"logprob"``, a verifier (Agent, backend or name), or ``(task, answer) -> float``."""


@dataclass(frozen=True)
class Stage:
    """One model of a cascade.

    Args:
        model: an Agent, backend or ``"provider:model"`` name.
        threshold: accept the answer when its score is at least this (ignored on the last stage).
        scorer: this stage's scorer (the cascade's when None).
        price: (per million prompt tokens, per million completion tokens), used when the
            backend's completions carry no cost.
        name: label in results (the agent's name, else ``stage_<i>``).
    """

    model: ModelLike
    threshold: float | None = None
    scorer: Scorer | None = None
    price: tuple[float, float] | None = None
    name: str | None = None


class StageResult(BaseModel):
    """One stage that was asked."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: int
    name: str
    text: str
    score: float | None
    """None when not scored (last stage) or when the verifier's reply held no score."""
    threshold: float | None
    accepted: bool
    usage: Usage
    """The answer's and the scorer's calls."""
    answer_usage: Usage
    """The answer's call alone."""
    cost: float
    latency_s: float


class CascadeResult(BaseModel):
    """The answer, which stage gave it, and the cost against asking the last stage directly."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    stage: int
    """Index of the stage that answered."""
    stage_name: str
    stages: tuple[StageResult, ...]
    """Every stage asked, in order."""
    usage: Usage
    cost: float
    latency_s: float
    direct_usage: Usage
    """Usage of asking the last stage alone (measured, or estimated when it was not asked)."""
    direct_cost: float
    direct_estimated: bool

    @property
    def saving(self) -> float | None:
        """1 - cost / direct cost (negative when the cascade cost more); None when unknown."""
        return 1.0 - self.cost / self.direct_cost if self.direct_cost > 0 else None


def _price_cost(price: tuple[float, float] | None, usage: Usage) -> float:
    if usage.cost > 0 or price is None:
        return usage.cost
    return (usage.prompt_tokens * price[0] + usage.completion_tokens * price[1]) / 1e6


def _mean_logprob_score(completion: Completion, stage: str) -> float | None:
    logprobs = completion.choices[0].logprobs
    if logprobs is None:
        raise ConfigError(
            f"cascade stage {stage!r} returned no log-probabilities, so the 'logprob' scorer "
            "cannot score it. Use a backend with logprobs, a verifier, or a function scorer."
        )
    if not logprobs:
        return None
    return math.exp(sum(t.logprob for t in logprobs) / len(logprobs))


@dataclass
class _Resolved:
    model: Model
    agent: Any
    threshold: float | None
    scorer: Scorer
    price: tuple[float, float] | None
    name: str


class Cascade:
    """Stages cheapest first; each answer is scored and escalated when below its threshold.

    Args:
        stages: :class:`Stage` objects, or models (then give ``thresholds``).
        scorer: the default scorer (see module docstring); ``"logprob"`` by default.
        thresholds: one per stage but the last, for stages given as bare models.
        name: node and backend name.
        timeout: seconds one activation may take, as a node.

    Usable three ways: ``await cascade.run(task)`` (a :class:`CascadeResult`), as a graph node
    (its message carries ``metadata["stage"]``, ``["stage_name"]`` and ``["score"]``), and as a
    backend of an agent (``Agent("a", backend=cascade)``; the agent's usage then holds the
    whole cascade's usage).

    Raises:
        ConfigError: no stages, a missing threshold, or a 'logprob' scorer on a backend without
            logprobs.
    """

    join: Join = "all"
    accepts: tuple[type[Payload], ...] | None = None
    produces: type[Payload] | None = None

    def __init__(
        self,
        stages: Sequence[Stage | ModelLike],
        *,
        scorer: Scorer = "logprob",
        thresholds: Sequence[float] | None = None,
        name: str = "cascade",
        timeout: float | None = None,
    ) -> None:
        from accord.agents import Agent

        if not stages:
            raise ConfigError("a cascade needs at least one stage.")
        self.name = name
        self.timeout = timeout
        self.capabilities = Capabilities(streaming=True)
        self._stages: list[_Resolved] = []
        for i, raw in enumerate(stages):
            stage = raw if isinstance(raw, Stage) else Stage(raw)
            threshold = stage.threshold
            if threshold is None and thresholds is not None and i < len(thresholds):
                threshold = thresholds[i]
            if threshold is None and i < len(stages) - 1:
                raise ConfigError(
                    f"cascade stage {i} has no threshold; give Stage(..., threshold=...) or "
                    "thresholds=[...] for every stage but the last."
                )
            agent = stage.model if isinstance(stage.model, Agent) else None
            label = stage.name or (agent.name if agent is not None else f"stage_{i}")
            model = as_model(stage.model, default_name=label, role=f"cascade stage {i}")
            chosen = stage.scorer if stage.scorer is not None else scorer
            last = i == len(stages) - 1
            if chosen == "logprob" and model.backend is not None and not last:
                if not model.backend.capabilities.logprobs:
                    raise ConfigError(
                        f"cascade stage {label!r}: backend {model.backend.name!r} gives no "
                        "log-probabilities, so the 'logprob' scorer cannot score it. Use a "
                        "verifier or a function scorer."
                    )
            self._stages.append(_Resolved(model, agent, threshold, chosen, stage.price, label))

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self._stages)

    # ---------------------------------------------------------------- running

    def _request(self, stage: _Resolved, task: str | Request) -> Request:
        logprobs = stage.scorer == "logprob"
        if isinstance(task, Request):
            return task.model_copy(update={"agent": stage.model.name, "logprobs": logprobs})
        prompt = stage.agent.prompt(task, (), 0) if stage.agent is not None else task
        return stage.model.request(prompt, logprobs=logprobs)

    async def _score(
        self, stage: _Resolved, task: str, completion: Completion, ledger: Ledger, through: bool
    ) -> float | None:
        scorer = stage.scorer
        if scorer == "logprob":
            return _mean_logprob_score(completion, stage.name)
        from accord.agents import Agent, Step

        if isinstance(scorer, Agent | Backend | Model | str):
            scores = await judge_scores(
                scorer, task, [completion.text], ledger, through_run=through
            )
            return scores[0]
        value = await Step.invoke(scorer, task, completion.text)  # honours @step(thread=True)
        return None if value is None else float(value)

    async def _run(self, task: str | Request, *, through: bool) -> tuple[CascadeResult, Completion]:
        started = time.perf_counter()
        text_task = task if isinstance(task, str) else task.messages[-1].content
        results: list[StageResult] = []
        last = len(self._stages) - 1
        completion: Completion | None = None
        for i, stage in enumerate(self._stages):
            answering, scoring = Ledger(), Ledger()
            t0 = time.perf_counter()
            completion = await ask(
                stage.model, self._request(stage, task), answering, through_run=through
            )
            free = stage.scorer == "logprob" and completion.choices[0].logprobs is not None
            score = (
                await self._score(stage, text_task, completion, scoring, through)
                if i < last or free
                else None
            )
            accepted = i == last or (
                score is not None and stage.threshold is not None and score >= stage.threshold
            )
            cost = _price_cost(stage.price, answering.usage) + scoring.usage.cost
            results.append(
                StageResult(
                    stage=i,
                    name=stage.name,
                    text=completion.text,
                    score=score,
                    threshold=stage.threshold if i < last else None,
                    accepted=accepted,
                    usage=answering.usage + scoring.usage,
                    answer_usage=answering.usage,
                    cost=cost,
                    latency_s=time.perf_counter() - t0,
                )
            )
            if accepted:
                break
            if log.debug_enabled():
                log.debug("cascade_escalated", cascade=self.name, stage=stage.name, score=score)
        assert completion is not None
        final = results[-1]
        total = sum((r.usage for r in results), Usage())
        cost = sum(r.cost for r in results)
        direct_usage, direct_cost, estimated = self._direct(results)
        result = CascadeResult(
            text=final.text,
            stage=final.stage,
            stage_name=final.name,
            stages=tuple(results),
            usage=total,
            cost=cost,
            latency_s=time.perf_counter() - started,
            direct_usage=direct_usage,
            direct_cost=direct_cost,
            direct_estimated=estimated,
        )
        return result, completion

    def _direct(self, results: list[StageResult]) -> tuple[Usage, float, bool]:
        last = self._stages[-1]
        if results[-1].stage == len(self._stages) - 1:
            asked = results[-1]
            return asked.usage, asked.cost, False
        prompt = max(r.answer_usage.prompt_tokens for r in results)
        completion = results[-1].answer_usage.completion_tokens
        usage = Usage(requests=1, prompt_tokens=prompt, completion_tokens=completion)
        return usage, _price_cost(last.price, usage), True

    async def run(self, task: str | Request) -> CascadeResult:
        """Run the cascade on ``task`` (inside a graph run, calls count in the run).

        Args:
            task: the task text (an agent stage renders it with its template), or a whole
                request (sent to every stage as it is, with ``logprobs`` set as the scorer
                needs), to control ``max_tokens``, stop strings and sampling.
        """
        result, _ = await self._run(task, through=True)
        return result

    async def __call__(self, ctx: ActivationContext) -> NodeOutput:
        inputs = [m.text for m in ctx.inputs if m.sender != "task"]
        task = "\n\n".join(inputs) if inputs else ctx.task
        result, _ = await self._run(task, through=True)
        return NodeOutput(
            text=result.text,
            metadata={
                "stage": str(result.stage),
                "stage_name": result.stage_name,
                "score": "" if (s := result.stages[-1].score) is None else f"{s:.6g}",
                "cost": f"{result.cost:.6g}",
                "direct_cost": f"{result.direct_cost:.6g}",
            },
        )

    # ---------------------------------------------------------------- as a backend

    async def complete(self, request: Request) -> Completion:
        """Answer a request with the cascade; the completion's usage is the whole cascade's."""
        result, completion = await self._run(request, through=False)
        return Completion(
            choices=completion.choices[:1],
            usage=result.usage,
            model=f"{self.name}:{result.stage_name}",
            latency_s=result.latency_s,
        )

    async def stream(self, request: Request) -> AsyncIterator[Delta]:
        """The cascade's answer in one chunk (stages must finish before one is accepted)."""
        completion = await self.complete(request)
        yield Delta(text=completion.text)
        yield Delta(finish_reason=completion.finish_reason, usage=completion.usage)

    def __repr__(self) -> str:
        return f"Cascade({self.name!r}, stages={list(self.stage_names)})"
