"""Plan, solve, verify: a planner breaks the task down, a solver follows the plan, an optional
critic reviews, and a verifier accepts or rejects with a :class:`~accord.messages.Verdict`. A
rejection sends its reasons back to the solver, up to ``max_rounds`` solutions. (The shape of
Plan-and-Solve prompting, Wang et al. 2023, arXiv 2305.04091, with the verify loop of
LLM-as-verifier work such as Weng et al. 2023, arXiv 2212.09561.)

The verifier may be an agent (``accord.Verifier``) or a step, for example one that runs tests. The
output is the solver's last solution; the verdicts are in the transcript.
"""

from __future__ import annotations

from accord.errors import ConfigError
from accord.graphs._graph import DEFAULT_MAX_STEPS, Graph
from accord.graphs.patterns._common import check_output
from accord.messages import Critique, Message, Verdict
from accord.runtime import Node

__all__ = ["plan_solve_verify"]


def _rejected(m: Message) -> bool:
    return isinstance(m.payload, Verdict) and not m.payload.accepted


def plan_solve_verify(
    planner: Node,
    solver: Node,
    verifier: Node,
    *,
    critic: Node | None = None,
    max_rounds: int = 2,
    name: str = "plan_solve_verify",
) -> Graph:
    """planner → solver → (critic) → verifier, with rejected verdicts sent back to the solver.

    Args:
        planner: produces the plan (``accord.Planner``).
        solver: follows the plan and revises on feedback (``accord.Solver``).
        verifier: produces a ``Verdict`` (``accord.Verifier`` or a step).
        critic: optional; produces a ``Critique``; a rejection goes back to the solver before the
            verifier sees the solution.
        max_rounds: the most solutions the solver writes.
    """
    if max_rounds < 1:
        raise ConfigError(f"plan_solve_verify(): max_rounds must be 1 or more, not {max_rounds}.")
    check_output("plan_solve_verify", "verifier", verifier, Verdict)
    # the plan, then per round a solution, a critique and a verdict
    g = Graph(name, max_steps=max(DEFAULT_MAX_STEPS, 3 * max_rounds + 2))
    g.add(planner, solver, verifier)
    g.connect(planner, solver)
    if critic is None:
        g.connect(solver, verifier)
    else:
        check_output("plan_solve_verify", "critic", critic, Critique)
        g.add(critic)
        g.connect(solver, critic)
        g.connect(
            critic,
            solver,
            when=lambda m: isinstance(m.payload, Critique) and not m.payload.approved,
            max_rounds=max_rounds,
        )
        g.connect(
            critic,
            verifier,
            when=lambda m: (
                isinstance(m.payload, Critique)
                and (m.payload.approved or m.round >= max_rounds - 1)
            ),
        )
    g.connect(verifier, solver, when=_rejected, max_rounds=max_rounds)
    g.set_entry(planner)
    g.set_exit(solver)
    return g
