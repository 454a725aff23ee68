"""The after-inference methods as graph nodes, and a node that samples an agent.

Each selection node reads its input messages (the task message excluded; a
:class:`~accord.ensemble.Candidates` payload counts once per text) as candidates, runs its
method, and sends one message: the chosen text, with ``metadata`` saying which method chose,
which candidate (``index``) and from which node (``sender``). Judge, utility and aggregator calls
go through the activation, so the run's budgets and usage count them.

:class:`SampleNode` runs an :class:`~accord.agents.Agent` under another name with its own
temperature, seed and number of samples; :func:`~accord.ensemble.self_consistency` builds on it.
Caveat: with ``n > 1`` on a backend that cannot return several candidates per call, the node
makes ``n`` calls (seeds ``seed, seed+1, ...``) and counts each.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from accord.backends.base import Backend, Completion, Request
from accord.ensemble._best_of_n import Reward, SetReward, best_of_n
from accord.ensemble._calls import ModelLike
from accord.ensemble._candidates import Candidates, candidates_from_messages
from accord.ensemble._extract import Extractor, is_numeric_question
from accord.ensemble._fanout import fan_out
from accord.ensemble._fuse import fuse
from accord.ensemble._mbr import mbr
from accord.ensemble._pairwise import Aggregate, pairwise_rank
from accord.ensemble._results import Selection
from accord.ensemble._utility import Utility
from accord.ensemble._vote import TieBreak, tally
from accord.errors import ConfigError
from accord.messages import Payload, Usage, Vote
from accord.runtime import ActivationContext, Join, NodeOutput

if TYPE_CHECKING:
    from accord.agents import Agent

__all__ = [
    "SampleNode",
    "VoteNode",
    "MBRNode",
    "BestOfNNode",
    "PairwiseRankNode",
    "FuseNode",
]


class _Sampling:
    """An activation context that rewrites an agent's requests and keeps the last completion."""

    def __init__(
        self,
        ctx: ActivationContext,
        agent: str,
        n: int,
        temperature: float | None,
        seed: int | None,
    ) -> None:
        self._ctx = ctx
        self._update: dict[str, Any] = {"agent": agent, "n": n}
        if temperature is not None:
            self._update["temperature"] = temperature
        if seed is not None:
            self._update["seed"] = seed
        self.last: Completion | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    async def complete(self, request: Request, backend: Backend | None = None) -> Completion:
        request = request.model_copy(update=self._update)
        chosen = self._ctx.resolve_backend(backend)
        if request.n > 1 and not chosen.capabilities.n:
            completion = await self._one_by_one(request, chosen)
        else:
            completion = await self._ctx.complete(request, chosen)
        self.last = completion
        return completion

    async def _one_by_one(self, request: Request, backend: Backend) -> Completion:
        seed = request.seed
        parts = await fan_out(
            self._ctx.complete(
                request.model_copy(update={"n": 1, "seed": None if seed is None else seed + i}),
                backend,
            )
            for i in range(request.n)
        )
        usage = sum((p.usage for p in parts), Usage())
        return Completion(
            choices=tuple(p.choices[0] for p in parts),
            usage=usage,
            model=parts[0].model,
            latency_s=max(p.latency_s for p in parts),
        )


class SampleNode:
    """An agent run under its own name with its own sampling settings.

    Args:
        agent: the agent to run (its template, instructions, output type and backend).
        name: this node's name (also the ``agent`` name its requests carry, so a
            ``ScriptedBackend`` scripts each copy separately).
        n: samples per activation; with ``n > 1`` the node sends a
            :class:`~accord.ensemble.Candidates` payload holding every sample's text.
        temperature: sampling temperature (the agent's own when None).
        seed: sampling seed (the agent's own when None).
    """

    def __init__(
        self,
        agent: Agent,
        *,
        name: str | None = None,
        n: int = 1,
        temperature: float | None = None,
        seed: int | None = None,
    ) -> None:
        if n < 1:
            raise ConfigError(f"SampleNode needs n >= 1, got {n}.")
        self.agent = agent
        self.name = name or agent.name
        self.n = n
        self.temperature = temperature
        self.seed = seed
        self.join: Join = agent.join
        self.timeout = agent.timeout
        self.accepts: tuple[type[Payload], ...] | None = agent.accepts
        self.produces: type[Payload] | None = Candidates if n > 1 else agent.produces

    async def __call__(self, ctx: ActivationContext) -> NodeOutput:
        proxy = _Sampling(ctx, self.name, self.n, self.temperature, self.seed)
        out = await self.agent(proxy)  # type: ignore[arg-type]
        if self.n == 1 or proxy.last is None:
            return out
        texts = [choice.text for choice in proxy.last.choices]
        payload = Candidates(texts=texts)
        return NodeOutput(text=payload.as_text(), payload=payload)

    def __repr__(self) -> str:
        return f"SampleNode({self.name!r}, agent={self.agent.name!r}, n={self.n})"


class _MethodNode:
    join: Join
    accepts: tuple[type[Payload], ...] | None = None
    produces: type[Payload] | None = None

    def __init__(self, name: str, join: Join, timeout: float | None) -> None:
        if join not in ("all", "any"):
            raise ConfigError(f"node {name!r}: join must be 'all' or 'any', not {join!r}.")
        self.name = name
        self.join = join
        self.timeout = timeout

    def _selected(self, selection: Selection, senders: list[str]) -> NodeOutput:
        return NodeOutput(
            text=selection.text,
            metadata={
                "method": selection.method,
                "index": str(selection.index),
                "sender": senders[selection.index],
                "score": "" if (s := selection.scores[selection.index]) is None else f"{s:.6g}",
            },
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class VoteNode(_MethodNode):
    """Majority vote over the node's input messages; sends a :class:`~accord.messages.Vote`.

    Args:
        name: node name.
        extract: answer extractor (name or function), ``"text"`` when None; ``"auto"`` reads
            numbers (``"number"``) when the run's task asks for one (arithmetic, "how many"),
            else ``"text"``.
        weights: weight per sender node (1 for senders not listed).
        tie_break: ``"first"`` or ``"smallest"``.
        default: the answer when no input is usable (else the node fails).
        join: ``"all"`` (wait for every predecessor) or ``"any"``.
        timeout: seconds the activation may take.
    """

    produces: type[Payload] | None = Vote

    def __init__(
        self,
        name: str = "vote",
        *,
        extract: str | Extractor | None = None,
        weights: Mapping[str, float] | None = None,
        tie_break: TieBreak = "first",
        default: str | None = None,
        join: Join = "all",
        timeout: float | None = None,
    ) -> None:
        super().__init__(name, join, timeout)
        self.extract = extract
        self.weights = dict(weights or {})
        self.tie_break: TieBreak = tie_break
        self.default = default

    async def __call__(self, ctx: ActivationContext) -> NodeOutput:
        texts, senders = candidates_from_messages(ctx.inputs)
        extract = self.extract
        if extract == "auto":
            extract = "number" if is_numeric_question(ctx.task) else "text"
        result = tally(
            texts,
            extract=extract,
            weights=[self.weights.get(s, 1.0) for s in senders],
            tie_break=self.tie_break,
            default=self.default,
        )
        payload = result.to_payload()
        return NodeOutput(
            text=payload.as_text(),
            payload=payload,
            metadata={
                "method": "vote",
                "extract": extract if isinstance(extract, str) else "custom",
                "index": str(result.index),
                "sender": senders[result.index] if result.index >= 0 else "",
                "support": f"{result.support:.4f}",
                "fallback": "true" if result.fallback else "false",
                # A tie the tie rule settled, and the candidates with no readable answer.
                "tie": "true" if result.tied else "false",
                "tied": json.dumps(list(result.tied)),
                "unparsable": ",".join(senders[i] for i in result.unparsable),
            },
        )


class MBRNode(_MethodNode):
    """Minimum-Bayes-risk selection over the node's inputs (see :func:`~accord.ensemble.mbr`)."""

    def __init__(
        self,
        name: str = "mbr",
        *,
        utility: str | Utility = "chrf",
        extract: str | Extractor | None = "exact",
        join: Join = "all",
        timeout: float | None = None,
    ) -> None:
        super().__init__(name, join, timeout)
        self.utility = utility
        self.extract = extract

    async def __call__(self, ctx: ActivationContext) -> NodeOutput:
        texts, senders = candidates_from_messages(ctx.inputs)
        selection = await mbr(texts, utility=self.utility, extract=self.extract, task=ctx.task)
        return self._selected(selection, senders)


class BestOfNNode(_MethodNode):
    """Keeps the best input by a reward function, a set reward that sees every input at once,
    or a judge (:func:`~accord.ensemble.best_of_n`)."""

    def __init__(
        self,
        name: str = "best_of_n",
        *,
        reward: Reward | None = None,
        set_reward: SetReward | None = None,
        judge: ModelLike | None = None,
        join: Join = "all",
        timeout: float | None = None,
    ) -> None:
        super().__init__(name, join, timeout)
        if sum(x is not None for x in (reward, set_reward, judge)) != 1:
            raise ConfigError(
                f"node {name!r} needs exactly one of reward=..., set_reward=... or judge=...."
            )
        self.reward = reward
        self.set_reward = set_reward
        self.judge = judge

    async def __call__(self, ctx: ActivationContext) -> NodeOutput:
        texts, senders = candidates_from_messages(ctx.inputs)
        selection = await best_of_n(
            ctx.task, texts, reward=self.reward, set_reward=self.set_reward, judge=self.judge
        )
        return self._selected(selection, senders)


class PairwiseRankNode(_MethodNode):
    """Ranks its inputs by pairwise judge comparisons (:func:`~accord.ensemble.pairwise_rank`)."""

    def __init__(
        self,
        name: str = "rank",
        *,
        judge: ModelLike,
        aggregate: Aggregate = "wins",
        both_orders: bool = True,
        join: Join = "all",
        timeout: float | None = None,
    ) -> None:
        super().__init__(name, join, timeout)
        self.judge = judge
        self.aggregate: Aggregate = aggregate
        self.both_orders = both_orders

    async def __call__(self, ctx: ActivationContext) -> NodeOutput:
        texts, senders = candidates_from_messages(ctx.inputs)
        selection = await pairwise_rank(
            ctx.task,
            texts,
            judge=self.judge,
            aggregate=self.aggregate,
            both_orders=self.both_orders,
        )
        out = self._selected(selection, senders)
        out.metadata["ranking"] = ",".join(str(i) for i in selection.ranking)
        return out


class FuseNode(_MethodNode):
    """An aggregator writes one answer from its inputs (:func:`~accord.ensemble.fuse`).

    Inputs are shown in the order they arrive unless ``ranking`` is given.
    """

    def __init__(
        self,
        name: str = "fuse",
        *,
        aggregator: ModelLike,
        top: int = 3,
        ranking: Sequence[int] | None = None,
        join: Join = "all",
        timeout: float | None = None,
    ) -> None:
        super().__init__(name, join, timeout)
        self.aggregator = aggregator
        self.top = top
        self.ranking = list(ranking) if ranking is not None else None

    async def __call__(self, ctx: ActivationContext) -> NodeOutput:
        texts, senders = candidates_from_messages(ctx.inputs)
        fusion = await fuse(
            ctx.task, texts, aggregator=self.aggregator, top=self.top, ranking=self.ranking
        )
        return NodeOutput(
            text=fusion.text,
            metadata={
                "method": "fuse",
                "sources": ",".join(senders[i] for i in fusion.sources),
            },
        )
