"""A solver drafts and a critic reviews, until the critic approves or three drafts are written.

python examples/critique.py "Write a haiku about autumn rain." --model openai:gpt-4o-mini
"""

from __future__ import annotations

import asyncio

from _common import backend, parse

import accord


def build(max_rounds: int = 3) -> accord.Graph:
    solver = accord.Solver("writer", instructions="You write short, vivid poems.")
    critic = accord.Critic("editor", instructions="You are an exacting poetry editor.")
    return accord.critique_revise(solver, critic, max_rounds=max_rounds)


async def run(task: str, model: accord.Backend) -> accord.RunResult:
    return await build().run(task, model)


if __name__ == "__main__":
    args = parse(__doc__.splitlines()[0], "Write a haiku about autumn rain.")
    result = asyncio.run(run(args.task, backend(args)))
    drafts = [m for m in result.transcript if m.sender == "writer"]
    print(f"{len(drafts)} draft(s); final:\n{result.text}")
