"""Fusion: an aggregator model writes one answer from the top candidates.

LLM-Blender's GenFuser (Jiang, Ren and Lin, ACL 2023, arXiv 2306.02561) generates a fused answer
from the task and the top K = 3 ranked candidates; Mixture-of-Agents (Wang et al., arXiv
2406.04692) asks an aggregator to synthesise numbered references critically rather than copy one.
:func:`fuse` does both: pass a ranking (e.g. a :class:`~accord.ensemble.Selection`) and it shows
the aggregator the top ``top`` candidates in that order.

An aggregator given as an :class:`~accord.agents.Agent` is prompted with its own template and
instructions (an :class:`~accord.agents.Aggregator` uses ``aggregator.j2``), the candidates
arriving as its input messages from senders ``candidate_<i>``; a bare backend gets the built-in
aggregator template. Caveat: the fused text is not checked; an empty reply is an error.
"""

from __future__ import annotations

from collections.abc import Sequence

from accord.ensemble._calls import Ledger, ModelLike, as_model, ask
from accord.ensemble._candidates import Candidate, candidate_texts
from accord.ensemble._results import Fusion, Selection
from accord.errors import ConfigError, EnsembleError
from accord.messages import Message

__all__ = ["fuse"]

_DEFAULT_INSTRUCTIONS = "You synthesise several responses into one better answer."


def _order(n: int, ranking: Selection | Sequence[int] | None, top: int) -> list[int]:
    if ranking is None:
        order = list(range(n))
    else:
        order = list(ranking.ranking if isinstance(ranking, Selection) else ranking)
        bad = [i for i in order if not 0 <= i < n]
        if bad or len(set(order)) != len(order):
            raise ConfigError(
                f"ranking must list distinct candidate indices in 0..{n - 1}, got {order}."
            )
    return order[:top]


async def fuse(
    task: str,
    candidates: Sequence[Candidate],
    *,
    aggregator: ModelLike,
    top: int = 3,
    ranking: Selection | Sequence[int] | None = None,
) -> Fusion:
    """Ask an aggregator to write one answer from the ``top`` best candidates.

    Args:
        task: the task.
        candidates: strings, messages, payloads or choices.
        aggregator: an Agent (its template and instructions are used), backend or name.
        top: how many candidates to show (GenFuser used 3).
        ranking: candidate indices best first, or a Selection whose ranking to use; the given
            order when None.

    Returns:
        The fused text, which candidates were shown, and the cost.

    Raises:
        EnsembleError: no candidates, or the aggregator's reply is empty.
        ConfigError: ``top`` < 1, or a ranking that does not fit the candidates.
    """
    from accord.agents import Agent, format_inputs
    from accord.prompts import Template

    if top < 1:
        raise ConfigError(f"fuse needs top >= 1, got {top}.")
    texts = candidate_texts(candidates)
    if not texts:
        raise EnsembleError("fuse got no candidates to aggregate.")
    shown = _order(len(texts), ranking, top)
    messages = [
        Message(id=f"candidate/{i}", run_id="", sender=f"candidate_{i}", text=texts[i])
        for i in shown
    ]
    model = as_model(aggregator, default_name="aggregator", role="aggregator")
    if isinstance(aggregator, Agent):
        prompt = aggregator.prompt(task, tuple(messages), 0)
        request = model.request(prompt)
    else:
        prompt = Template.builtin("aggregator").render(
            task=task,
            messages=[{"sender": m.sender, "text": m.text, "round": 0} for m in messages],
            inputs=format_inputs(messages),
            round=0,
            name=model.name,
        )
        request = model.request(prompt, system=_DEFAULT_INSTRUCTIONS)
    ledger = Ledger()
    completion = await ask(model, request, ledger)
    if not completion.text.strip():
        raise EnsembleError(
            f"the aggregator {model.name!r} returned an empty answer. Check its backend, or "
            "select a candidate instead (best_of_n, pairwise_rank)."
        )
    return Fusion(
        text=completion.text, sources=tuple(shown), usage=ledger.usage, latency_s=ledger.elapsed()
    )
