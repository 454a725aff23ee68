"""Critique and revise (Self-Refine: Madaan et al. 2023, "Self-Refine: Iterative Refinement with
Self-Feedback", arXiv 2303.17651).

The solver drafts; the critic returns a :class:`~accord.messages.Critique`; while the critic does not
approve, its critique goes back to the solver, which revises. The loop ends on approval or after
``max_rounds`` drafts. The output is the solver's last draft.
"""

from __future__ import annotations

from accord.graphs._graph import DEFAULT_MAX_STEPS, Graph
from accord.graphs.patterns._common import check_output
from accord.messages import Critique, Message
from accord.runtime import Node

__all__ = ["critique_revise"]


def _rejected(m: Message) -> bool:
    return isinstance(m.payload, Critique) and not m.payload.approved


def critique_revise(
    solver: Node, critic: Node, max_rounds: int = 3, *, name: str = "critique_revise"
) -> Graph:
    """A solver/critic loop.

    Args:
        solver: drafts and revises (``accord.Solver``).
        critic: produces a ``Critique`` (``accord.Critic``, or a step returning ``Critique``).
        max_rounds: the most drafts the solver writes.

    Example::

        g = accord.critique_revise(accord.Solver("solver"), accord.Critic("critic"), max_rounds=3)
        result = await g.run("Write a haiku about rain.", backend=...)
        print(result.text)  # the last draft
    """
    check_output("critique_revise", "critic", critic, Critique)
    # a draft and a critique per round
    g = Graph(name, max_steps=max(DEFAULT_MAX_STEPS, 2 * max_rounds + 2))
    g.add(solver, critic)
    g.connect(solver, critic)
    g.connect(critic, solver, when=_rejected, max_rounds=max_rounds)
    g.set_entry(solver)
    g.set_exit(solver)
    return g
