"""A panel of judges (ChatEval-style: Chan et al. 2023, "ChatEval: Towards Better LLM-based
Evaluators through Multi-Agent Debate", arXiv 2308.07201).

Several judges read the task (the question and the candidates to evaluate), each gives a decision,
optionally over several rounds in which each judge reads the others' decisions, and the decisions
are combined by majority vote (or by a final judge). It is the debate graph with judges as the
debaters.
"""

from __future__ import annotations

from collections.abc import Sequence

from accord.agents import Agent
from accord.graphs._graph import Graph
from accord.graphs.patterns.debate import debate
from accord.runtime import Node

__all__ = ["judge_panel"]


def judge_panel(
    judges: Sequence[Node],
    rounds: int = 1,
    combine: str | Agent = "vote",
    *,
    name: str = "judge_panel",
) -> Graph:
    """Judges evaluate the candidates in the task; their decisions are combined.

    Args:
        judges: two or more judges (``accord.Judge`` gives an ``Answer`` whose ``answer`` field
            is the verdict, e.g. the label of the best candidate).
        rounds: 1 for independent judgements; more to let judges read each other's decisions.
        combine: ``"vote"`` (majority of the decisions) or a final judge agent.

    Example::

        panel = accord.judge_panel([accord.Judge(f"j{i}") for i in range(3)])
        task = "Which answer is better? A: ... B: ... Reply with A or B."
        result = await panel.run(task, backend=...)
        print(result.output.payload.answer)
    """
    return debate(judges, rounds=rounds, aggregate=combine, stop_on_consensus=True, name=name)
