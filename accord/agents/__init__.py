"""Agents (LLM-backed nodes), the built-in roles, and ``@step`` for plain-function nodes."""

from __future__ import annotations

from accord.agents._agent import Agent, format_inputs, parse_payload, validate_reply
from accord.agents._human import Human
from accord.agents._roles import Aggregator, Critic, Debater, Judge, Planner, Solver, Verifier
from accord.agents._step import Step, step

__all__ = [
    "Agent",
    "Planner",
    "Solver",
    "Critic",
    "Verifier",
    "Judge",
    "Debater",
    "Aggregator",
    "Step",
    "step",
    "Human",
    "parse_payload",
    "validate_reply",
    "format_inputs",
]
