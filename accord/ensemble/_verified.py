"""Verified search: answer greedily, check, and spend more samples only where the checks fail.

For tasks with a checkable answer (code with examples, a math answer with a checking step), one
node runs a cascade over samples:

1. ask the solver once at temperature 0 and check the answer (:mod:`accord.verify`);
2. stop when the best answer passes every trusted check and the evidence is strong enough: at
   least ``strong`` checks, or ``agree`` candidates that behave the same;
3. else sample ``batch`` more answers (temperature ``temperature``, seeds ``seed, seed+1, ...``),
   check them, and choose again, until the per-task ``budget`` of answers is spent;
4. optionally (``repairs``) show the solver its best answer's concrete failure (input, expected,
   actual) and check the revision.

The choice (:func:`select_checked`) is set-level: candidates are clustered by behaviour (equal
outputs on the same inputs, or the same extracted answer), and ranked by the share of trusted
checks passed, then by agreement: cluster size x (1 + weak checks passed), CodeT's dual agreement
(Chen et al., arXiv 2207.10397) over AlphaCode's behaviour clusters (Li et al., arXiv 2203.07814).
``select="checks"`` ranks by checks alone (earliest first). It is :func:`best_of_n` with a set
reward, so it can be used alone: ``best_of_n(task, texts, set_reward=checked_reward(check))``.

Caveat: sampling with ``budget > 1`` needs a temperature above 0; the checker decides what is
"trusted" (a model-written test is weak evidence and only breaks ties). An answer cut at the
token limit (``TruncatedOutputError``) is kept as a candidate with the text that arrived, and
the checks judge it; a backend that raises does not report that call's tokens, so give it
``on_truncation="return"`` when the run's usage must count them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from accord._log import get_logger
from accord.ensemble._best_of_n import SetReward, best_of_n
from accord.ensemble._fanout import fan_out
from accord.ensemble._nodes import _Sampling
from accord.errors import ConfigError, TruncatedOutputError
from accord.messages import Message, Payload
from accord.runtime import ActivationContext, Join, NodeOutput
from accord.verify import Checker, CheckResult, run_checker

if TYPE_CHECKING:
    from accord.agents import Agent
    from accord.graphs import Graph

__all__ = ["VerifiedSearchNode", "verified_search", "select_checked", "checked_reward"]

log = get_logger(__name__)

Select = Literal["cluster", "checks"]


def _agreement(results: Sequence[CheckResult]) -> list[int]:
    sizes = Counter(r.signature for r in results if r.signature is not None)
    return [sizes[r.signature] if r.signature is not None else 1 for r in results]


def select_checked(results: Sequence[CheckResult], select: Select = "cluster") -> list[float]:
    """A score per candidate from all candidates' check results (higher is better).

    ``"cluster"``: share of trusted checks passed, then cluster size x (1 + weak checks passed).
    ``"checks"``: share of trusted checks passed, then weak checks passed.
    """
    agree = _agreement(results)
    scores = []
    for r, size in zip(results, agree, strict=True):
        support = size * (1 + r.weak_passed) if select == "cluster" else r.weak_passed
        scores.append(r.rate * 1e6 + min(support, 999_999))
    return scores


def checked_reward(check: Checker, select: Select = "cluster") -> SetReward:
    """A set reward for :func:`best_of_n` that runs ``check`` on every candidate and scores them
    together with :func:`select_checked`."""

    async def reward(task: str, texts: list[str]) -> list[float]:
        results = await fan_out(run_checker(check, task, t) for t in texts)
        return select_checked(results, select)

    return reward


class VerifiedSearchNode:
    """The verified search of the module docstring as one graph node.

    Args:
        solver: the agent that writes answers (its template, instructions and backend).
        check: the checker (see :mod:`accord.verify`).
        name: node name.
        budget: the most answers per task (the greedy one included), repairs excluded.
        batch: answers sampled per round after the first.
        temperature: sampling temperature of the extra answers (> 0).
        top_p: nucleus sampling of the extra answers (None: the backend's default).
        seed: seed of the first extra answer (the i-th gets ``seed + i``).
        strong: this many trusted checks passing is enough to stop.
        agree: this many agreeing candidates passing their checks is enough to stop.
        select: ``"cluster"`` (checks, then agreement) or ``"checks"`` (checks only).
        repairs: revisions asked with the best answer's failure once the budget is spent.
        join, timeout: as for any node.

    The output is the chosen answer's text; its metadata records the search: ``answers``,
    ``repairs``, ``index``, ``passed``/``total`` of the choice, ``cluster`` (its size),
    ``stop`` (``"verified"``, ``"budget"``).
    """

    accepts: tuple[type[Payload], ...] | None = None
    produces: type[Payload] | None = None

    def __init__(
        self,
        solver: Agent,
        check: Checker,
        *,
        name: str = "search",
        budget: int = 10,
        batch: int = 1,
        temperature: float = 0.8,
        top_p: float | None = None,
        seed: int = 1,
        strong: int = 2,
        agree: int = 2,
        select: Select = "cluster",
        repairs: int = 0,
        join: Join = "all",
        timeout: float | None = None,
    ) -> None:
        if budget < 1 or batch < 1 or repairs < 0:
            raise ConfigError(
                f"node {name!r}: budget and batch must be at least 1 and repairs at least 0 "
                f"(got budget={budget}, batch={batch}, repairs={repairs})."
            )
        if budget > 1 and not temperature > 0:
            raise ConfigError(
                f"node {name!r}: extra answers need temperature > 0 (got {temperature}); at 0 "
                "every sample repeats the first answer."
            )
        if select not in ("cluster", "checks"):
            raise ConfigError(
                f"node {name!r}: select must be 'cluster' or 'checks', not {select!r}."
            )
        if not callable(check):
            raise ConfigError(
                f"node {name!r}: check must be a checker, check(task, answer), such as "
                f"accord.verify.python_checks(); got {type(check).__name__} {check!r:.80}."
            )
        self.solver = solver
        self.check = check
        self.name = name
        self.budget = budget
        self.batch = batch
        self.temperature = temperature
        self.top_p = top_p
        self.seed = seed
        self.strong = strong
        self.agree = agree
        self.select: Select = select
        self.repairs = repairs
        self.join: Join = join
        self.timeout = timeout

    async def _answer(
        self,
        ctx: ActivationContext,
        temperature: float,
        seed: int | None,
        feedback: Message | None = None,
    ) -> str:
        proxy = _Sampling(ctx, self.name, 1, temperature, seed)
        if self.top_p is not None and temperature > 0:
            proxy._update["top_p"] = self.top_p
        if feedback is not None:  # a revision: the solver's round-1 prompt, with the failure
            proxy.inputs = (*ctx.inputs, feedback)  # type: ignore[attr-defined]
            proxy.round = ctx.round + 1  # type: ignore[attr-defined]
        try:
            out = await self.solver(proxy)  # type: ignore[arg-type]
        except TruncatedOutputError as exc:  # a long answer is a candidate that the checks judge
            log.info("verified_search_truncated", node=self.name, chars=len(exc.partial_text))
            return exc.partial_text
        return out.text

    def _stop(self, results: Sequence[CheckResult], best: int) -> bool:
        chosen = results[best]
        cluster = _agreement(results)[best]
        if chosen.total == 0:  # nothing trusted to check: agreement alone
            return chosen.signature is not None and cluster >= self.agree
        return chosen.ok and (chosen.total >= self.strong or cluster >= self.agree)

    async def _best(self, task: str, texts: list[str], results: list[CheckResult]) -> int:
        """The chosen candidate: best_of_n with the checks' set-level scores."""
        scores = select_checked(results, self.select)
        selection = await best_of_n(task, texts, set_reward=lambda candidates: scores)
        return selection.index

    async def __call__(self, ctx: ActivationContext) -> NodeOutput:
        task = ctx.task
        texts = [await self._answer(ctx, 0.0, None)]
        results = [await run_checker(self.check, task, texts[0])]
        best = await self._best(task, texts, results)
        stop = "verified" if self._stop(results, best) else "budget"
        while stop != "verified" and len(texts) < self.budget:
            start = len(texts) - 1
            count = min(self.batch, self.budget - len(texts))
            new = await fan_out(
                self._answer(ctx, self.temperature, self.seed + start + i) for i in range(count)
            )
            texts.extend(new)
            results.extend(await fan_out(run_checker(self.check, task, t) for t in new))
            best = await self._best(task, texts, results)
            stop = "verified" if self._stop(results, best) else "budget"
        repaired = 0
        while not results[best].ok and repaired < self.repairs:
            failure = results[best].feedback or "It does not pass the checks."
            note = Message(
                id=f"{ctx.activation_id}/check/{repaired}",
                run_id=ctx.run_id,
                sender="checks",
                text=f"Your answer:\n{texts[best]}\n\nIt fails a check: {failure}",
                round=ctx.round,
            )
            text = await self._answer(ctx, 0.0, None, note)
            repaired += 1
            texts.append(text)
            results.append(await run_checker(self.check, task, text))
            best = await self._best(task, texts, results)
        chosen = results[best]
        return NodeOutput(
            text=texts[best],
            metadata={
                "method": "verified_search",
                "answers": str(len(texts) - repaired),
                "repairs": str(repaired),
                "index": str(best),
                "passed": str(chosen.passed),
                "total": str(chosen.total),
                "cluster": str(_agreement(results)[best]),
                "stop": "verified" if self._stop(results, best) else "budget",
            },
        )

    def __repr__(self) -> str:
        return (
            f"VerifiedSearchNode({self.name!r}, solver={self.solver.name!r}, budget={self.budget})"
        )


def verified_search(
    solver: Agent,
    check: Checker,
    *,
    budget: int = 10,
    batch: int = 1,
    temperature: float = 0.8,
    top_p: float | None = None,
    seed: int = 1,
    strong: int = 2,
    agree: int = 2,
    select: Select = "cluster",
    repairs: int = 0,
    name: str | None = None,
) -> Graph:
    """A one-node graph running :class:`VerifiedSearchNode` (arguments as there).

    Example::

        solver = accord.Agent("coder", backend, template="{{ task }}")
        graph = accord.verified_search(solver, accord.verify.python_checks(), budget=10)
        result = await graph.run(prompt)          # a "write this function" task
        print(result.text, result.output.metadata["stop"])
    """
    from accord.graphs import Graph

    node = VerifiedSearchNode(
        solver,
        check,
        budget=budget,
        batch=batch,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        strong=strong,
        agree=agree,
        select=select,
        repairs=repairs,
    )
    graph = Graph(name or f"verified_search_{solver.name}")
    graph.add(node)
    return graph
