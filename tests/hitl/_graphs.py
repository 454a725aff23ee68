"""Graphs the human-in-the-loop tests share (imported by subprocesses too)."""

from __future__ import annotations

from typing import Any

import accord
from accord.runtime import ActivationContext

DONE: list[str] = []
"""Names of steps that ran in this process, in order."""


@accord.step
def draft(task: str) -> str:
    DONE.append("draft")
    return f"plan for {task}"


@accord.step
def act(decision: accord.Approval) -> str:
    DONE.append("act")
    return "done" if decision.approved else f"refused: {decision.reason}"


def approval_graph(**human: Any) -> accord.Graph:
    """draft -> review (a Human giving an Approval) -> act."""
    g = accord.Graph("approval")
    review = accord.Human("review", question="Approve {{ last }}?", output=accord.Approval, **human)
    g.add(draft, review, act)
    g.connect("draft", "review")
    g.connect("review", "act")
    g.set_entry("draft")
    g.set_exit("act")
    return g


def with_side_branch(g: accord.Graph, steps: int = 3) -> accord.Graph:
    """Add an independent chain side0 -> side1 -> ... that does not depend on any answer."""
    names = []

    def make(i: int) -> accord.Step:
        async def side(task: str) -> str:
            DONE.append(f"side{i}")
            return f"side {i}"

        return accord.Step(side, name=f"side{i}")

    for i in range(steps):
        node = make(i)
        g.add(node)
        names.append(node.name)
    for a, b in zip(names, names[1:], strict=False):
        g.connect(a, b)
    g.set_entry(*g.entries, names[0])
    g.set_exit(*g.exits, names[-1])
    return g


@accord.step
async def asks_twice(ctx: ActivationContext) -> str:
    name = await ctx.ask("Your name?")
    age = await ctx.ask(f"{name}, your age?", output=int)
    return f"{name} is {age}"


def two_asks_graph() -> accord.Graph:
    g = accord.Graph("two-asks")
    g.add(asks_twice)
    g.set_entry("asks_twice")
    g.set_exit("asks_twice")
    return g


graph = approval_graph()
