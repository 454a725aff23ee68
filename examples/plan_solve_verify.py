"""Plan, write code, and verify it by running it on examples with accord.tools.python_exec.

The verifier is a plain step, not a model: it extracts the candidate's Python code, runs it with
each example's input on stdin, and rejects it with the failing cases, which go back to the solver.

    python examples/plan_solve_verify.py --model openai:gpt-4o-mini
"""

from __future__ import annotations

import asyncio
import re

from _common import backend, parse

import accord
from accord.tools import python_exec

EXAMPLES = [("3 4\n", "7"), ("10 -2\n", "8"), ("0 0\n", "0")]
TASK = "Write a Python program that reads two integers from one line of stdin and prints their sum."


def extract_code(text: str) -> str:
    """The last fenced code block of a reply, or the whole reply."""
    blocks = re.findall(r"```(?:python|py)?\s*\n(.*?)```", text, re.DOTALL)
    return blocks[-1] if blocks else text


async def run_case(code: str, stdin: str, limit_s: float) -> tuple[bool, str]:
    """Run the candidate with ``stdin`` in accord's limited subprocess (accord.tools.python_exec:
    timeout, memory and output limits, minimal environment, temporary directory, no network
    where the system allows it)."""
    result = await python_exec(code, stdin=stdin, timeout=limit_s)
    if result.timed_out:
        return False, f"timed out after {limit_s} s"
    if result.exit_code != 0:
        lines = result.stderr.strip().splitlines()
        return False, lines[-1] if lines else f"exit {result.exit_code}"
    return True, result.stdout.strip()


def make_verifier(examples: list[tuple[str, str]], limit_s: float = 5.0) -> accord.Step:
    @accord.step(name="tests")
    async def tests(messages: list[accord.Message]) -> accord.Verdict:
        code = extract_code(messages[-1].text)
        failures = []
        for stdin, expected in examples:
            ok, got = await run_case(code, stdin, limit_s)
            if not ok or got != expected:
                failures.append(f"input {stdin.strip()!r}: expected {expected!r}, got {got!r}")
        return accord.Verdict(accepted=not failures, reasons=failures)

    return tests


def build(examples: list[tuple[str, str]] = EXAMPLES, max_rounds: int = 3) -> accord.Graph:
    return accord.plan_solve_verify(
        accord.Planner("planner"),
        accord.Solver(
            "coder", instructions="You write correct Python. Reply with one ```python block."
        ),
        make_verifier(examples),
        max_rounds=max_rounds,
    )


async def run(task: str, model: accord.Backend) -> accord.RunResult:
    return await build().run(task, model)


if __name__ == "__main__":
    args = parse(__doc__.splitlines()[0], TASK)
    result = asyncio.run(run(args.task, backend(args)))
    verdicts = [m.payload for m in result.transcript if isinstance(m.payload, accord.Verdict)]
    print(result.text)
    print(
        "accepted"
        if verdicts and verdicts[-1].accepted
        else f"rejected: {verdicts[-1].reasons if verdicts else []}"
    )
