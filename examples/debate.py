"""Three debaters argue over a question for up to three rounds; the majority answer wins.

python examples/debate.py "What is 17 * 24?" --model openai:gpt-4o-mini
"""

from __future__ import annotations

import asyncio

from _common import backend, parse

import accord


def build(debaters: int = 3, rounds: int = 3) -> accord.Graph:
    return accord.debate(
        [accord.Debater(f"debater_{i + 1}") for i in range(debaters)], rounds=rounds
    )


async def run(task: str, model: accord.Backend) -> accord.RunResult:
    return await build().run(task, model)


if __name__ == "__main__":
    args = parse(__doc__.splitlines()[0], "What is 17 * 24? Reply with the number.")
    result = asyncio.run(run(args.task, backend(args)))
    for m in result.transcript:
        print(f"--- {m.sender} (round {m.round})\n{m.text}\n")
    print(
        "answer:",
        result.output.payload.answer if result.output and result.output.payload else result.text,
    )
