"""Mixture-of-Agents: two layers of three proposers, then an aggregator.

Proposers may use different models; here they share one (pass --model), with different
instructions so their answers differ.

    python examples/mixture_of_agents.py "Explain why the sky is blue in two sentences." --model openai:gpt-4o-mini
"""

from __future__ import annotations

import asyncio

from _common import backend, parse

import accord

STYLES = {
    "physicist": "You explain with physics.",
    "teacher": "You explain simply.",
    "skeptic": "You check every claim.",
}


def build(layers: int = 2) -> accord.Graph:
    proposers = [accord.Agent(name, instructions=text) for name, text in STYLES.items()]
    return accord.mixture_of_agents(proposers, accord.Aggregator("aggregator"), layers=layers)


async def run(task: str, model: accord.Backend) -> accord.RunResult:
    return await build().run(task, model)


if __name__ == "__main__":
    args = parse(__doc__.splitlines()[0], "Explain why the sky is blue in two sentences.")
    result = asyncio.run(run(args.task, backend(args)))
    print(result.text)
    print(f"{result.usage.requests} model calls, {result.usage.total_tokens} tokens")
