"""``self_consistency(solver, k)``: a ready-made graph that samples k answers and votes.

Self-consistency (Wang et al., ICLR 2023, arXiv 2203.11171): sample k reasoning paths at a
temperature above 0 and return the most common final answer. The graph has k sampled copies of
the solver running in parallel (``solver_0 .. solver_{k-1}``, seeds ``seed .. seed+k-1``) and a
:class:`~accord.ensemble.VoteNode` named ``"vote"``; or, with ``samples="n"``, one node that asks
for k samples in one call (backends that return several candidates per call do it in one
forward pass; others are called k times).

By default the vote reads numbers (``extract="number"``) when the task asks for one (arithmetic,
"how many", "compute": :func:`~accord.ensemble._extract.is_numeric_question`), so "the solution
to 17 * 24 is 408" and "Answer: 408" agree, and the marked answer or the text otherwise. A tie is
settled by ``tie_break`` and reported: the output message's metadata has ``tie`` ("true") and
``tied`` (the tied answers, JSON), and ``unparsable`` names the samples with no readable answer.

With ``reward=``, ``set_reward=`` or ``judge=`` the samples are chosen by that scorer instead
of the vote (:class:`~accord.ensemble.BestOfNNode`): a verifier, tests run on each sample, or a
set-level score that counts agreement between samples.

Caveat: greedy decoding (temperature 0) makes every copy say the same thing, so the temperature
must be above 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from accord.ensemble._best_of_n import Reward, SetReward
from accord.ensemble._calls import ModelLike
from accord.ensemble._extract import Extractor
from accord.ensemble._nodes import BestOfNNode, SampleNode, VoteNode
from accord.ensemble._vote import TieBreak
from accord.errors import ConfigError

if TYPE_CHECKING:
    from accord.agents import Agent
    from accord.graphs import Graph

__all__ = ["self_consistency"]


def self_consistency(
    solver: Agent,
    k: int = 5,
    *,
    temperature: float = 0.7,
    seed: int | None = 0,
    extract: str | Extractor | None = None,
    weights: Mapping[str, float] | None = None,
    tie_break: TieBreak = "first",
    default: str | None = None,
    samples: Literal["copies", "n"] = "copies",
    reward: Reward | None = None,
    set_reward: SetReward | None = None,
    judge: ModelLike | None = None,
    name: str | None = None,
) -> Graph:
    """A graph that samples ``k`` answers from ``solver`` and votes on them.

    Args:
        solver: the agent to sample (its backend, template and instructions are used).
        k: number of samples.
        temperature: sampling temperature (> 0).
        seed: seed of the first sample (the i-th gets ``seed + i``); None for unseeded.
        extract: answer extractor for the vote (``"number"``, ``"choice"``, ``"answer"``, ...);
            None: ``"number"`` when the task asks for a number, else ``"text"``.
        weights: vote weight per sampling node name.
        tie_break: ``"first"`` or ``"smallest"``.
        default: the answer when no sample is usable (else the vote node fails).
        samples: ``"copies"`` (k parallel nodes) or ``"n"`` (one node, k samples per call).
        reward, set_reward, judge: choose with a scorer instead of the vote (at most one): a
            reward or checker per sample, a set reward that sees all samples at once
            (:func:`~accord.ensemble.checked_reward` runs tests and prefers agreeing
            candidates), or an LLM judge. The last node is then a
            :class:`~accord.ensemble.BestOfNNode` named ``"best_of_n"``.
        name: graph name (``self_consistency_<solver>`` by default).

    Returns:
        An :class:`accord.Graph` whose output is a :class:`~accord.messages.Vote` message
        (its metadata names the winning candidate, its support, and any tie), or, with a
        scorer, the chosen sample's text (its metadata: ``index``, ``sender``, ``score``).

    Raises:
        ConfigError: ``k`` < 1, a temperature that is not above 0, or an unknown ``samples``.

    Example::

        graph = accord.self_consistency(accord.Solver("solver", backend), k=5, extract="number")
        result = await graph.run("What is 17 * 23?")
        print(result.output.payload.answer, result.output.metadata["support"])
    """
    from accord.graphs import Graph

    if k < 1:
        raise ConfigError(f"self_consistency needs k >= 1, got {k}.")
    if not temperature > 0:
        raise ConfigError(
            f"self_consistency needs temperature > 0 (got {temperature}): at temperature 0 every "
            "sample is the same answer."
        )
    if samples not in ("copies", "n"):
        raise ConfigError(f"samples must be 'copies' or 'n', not {samples!r}.")
    scorers = sum(x is not None for x in (reward, set_reward, judge))
    if scorers > 1:
        raise ConfigError("self_consistency takes at most one of reward, set_reward and judge.")
    graph = Graph(name or f"self_consistency_{solver.name}")
    voter: VoteNode | BestOfNNode
    if scorers:
        voter = BestOfNNode(reward=reward, set_reward=set_reward, judge=judge)
    else:
        voter = VoteNode(
            "vote",
            extract="auto" if extract is None else extract,
            weights=weights,
            tie_break=tie_break,
            default=default,
        )
    if samples == "n":
        node = SampleNode(solver, name=solver.name, n=k, temperature=temperature, seed=seed)
        graph.add(node, voter)
        graph.connect(node.name, voter.name)
        return graph
    copies = [
        SampleNode(
            solver,
            name=f"{solver.name}_{i}",
            temperature=temperature,
            seed=None if seed is None else seed + i,
        )
        for i in range(k)
    ]
    graph.add(*copies, voter)
    for copy in copies:
        graph.connect(copy.name, voter.name)
    return graph
