"""Ready-made cooperation patterns. Each returns an ordinary :class:`accord.Graph` that can be
inspected, drawn and extended."""

from __future__ import annotations

from accord.graphs.patterns._common import extract_answer
from accord.graphs.patterns.chat import round_robin, selector_chat
from accord.graphs.patterns.critique import critique_revise
from accord.graphs.patterns.debate import DebateRound, Position, debate
from accord.graphs.patterns.judge_panel import judge_panel
from accord.graphs.patterns.moa import mixture_of_agents
from accord.graphs.patterns.plan_solve_verify import plan_solve_verify

__all__ = [
    "debate",
    "critique_revise",
    "plan_solve_verify",
    "mixture_of_agents",
    "round_robin",
    "selector_chat",
    "judge_panel",
    "DebateRound",
    "Position",
    "extract_answer",
]
