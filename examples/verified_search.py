"""Greedy first, more samples only when the checks fail: a function checked against its own
docstring examples, and an equation checked by substituting the answer back.

python examples/verified_search.py --model openai:qwen --base-url http://127.0.0.1:8080/v1
python examples/verified_search.py "def is_palindrome(s: str) -> bool: ..." --model ...
"""

from __future__ import annotations

import asyncio

from _common import backend, parse

import accord
from accord.verify import answer_checks, python_checks

TASK = '''Complete this Python function; reply with the whole function in a ```python block.

```python
def running_max(xs: list[int]) -> list[int]:
    """The largest element seen so far, at each position.
    >>> running_max([1, 3, 2, 5])
    [1, 3, 3, 5]
    >>> running_max([])
    []
    """
```'''

EQUATION = "Solve x**2 - 5*x + 6 = 0 for the larger root x. End with 'Answer: <x>'."


def solves(answer: str) -> bool:
    """The checking step for EQUATION: substitute the answer back (and want the larger root)."""
    try:
        x = float(answer)
    except ValueError:
        return False
    return abs(x * x - 5 * x + 6) < 1e-9 and x > 2.5


def code_search(budget: int = 10) -> accord.Graph:
    coder = accord.Agent("coder", template="{{ task }}\n{{ inputs }}", max_tokens=512)
    return accord.verified_search(coder, python_checks(), budget=budget)


def math_search(budget: int = 4) -> accord.Graph:
    return accord.verified_search(
        accord.Solver("solver"), answer_checks(solves), budget=budget, strong=1
    )


async def run(task: str, model: accord.Backend) -> accord.RunResult:
    return await code_search().run(task, model)


async def run_math(model: accord.Backend) -> accord.RunResult:
    return await math_search().run(EQUATION, model)


if __name__ == "__main__":
    args = parse(__doc__.splitlines()[0], TASK)
    model = backend(args)
    for result in (asyncio.run(run(args.task, model)), asyncio.run(run_math(model))):
        meta = result.output.metadata if result.output is not None else {}
        print(
            f"{meta.get('answers')} answer(s), checks {meta.get('passed')}/{meta.get('total')}, "
            f"stop: {meta.get('stop')}, {result.usage.requests} call(s)\n{result.text}\n"
        )
