"""Your own graph: typed nodes and a conditional loop.

A drafting agent writes a product description; a plain Python step scores it (a typed ``Score``
payload); while the score is too low, the draft goes back to the writer (at most 3 drafts).

    python examples/custom_graph.py "a solar-powered lamp" --model openai:gpt-4o-mini
    accord graph examples/custom_graph.py:graph --mermaid
"""

from __future__ import annotations

import asyncio

from _common import backend, parse

import accord


class Score(accord.Payload):
    """How good a draft is."""

    value: float
    """Between 0 and 1."""
    advice: list[str] = []
    """What to change, when the value is low."""


@accord.step
def score(task: str, draft: str) -> Score:
    words = draft.split()
    advice = []
    if not 10 <= len(words) <= 60:
        advice.append(f"use 10 to 60 words (now {len(words)})")
    if task.split()[-1].lower() not in draft.lower():
        advice.append(f"mention the {task.split()[-1]}")
    return Score(value=1.0 - 0.5 * len(advice), advice=advice)


def build() -> accord.Graph:
    g = accord.Graph("describe")
    g.add(accord.Agent("writer", instructions="You write product descriptions."), score)
    g.connect("writer", "score")
    g.connect("score", "writer", when=lambda m: m.payload.value < 1.0, max_rounds=3)
    g.set_entry("writer")
    g.set_exit("writer")
    return g


graph = build()


async def run(task: str, model: accord.Backend) -> accord.RunResult:
    return await build().run(task, model)


if __name__ == "__main__":
    args = parse(__doc__.splitlines()[0], "a solar-powered lamp")
    result = asyncio.run(run(args.task, backend(args)))
    print(result.text)
