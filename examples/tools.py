"""An agent with tools: a calculator and a file reader confined to one folder.

The model decides which tools to call; accord validates the arguments against each function's
signature, runs the calls (concurrently when the model asks for several at once), and sends the
results back until the model answers.

    python examples/tools.py "What is 17.5% of the number in notes.txt?" --model openai:gpt-4o-mini
"""

from __future__ import annotations

import ast
import asyncio
import operator
from pathlib import Path

from _common import backend, parse

import accord
from accord._terminal import safe

TASK = "What is 12.5% of 1,840? Then read notes.txt and say what it is about."

_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}


def _evaluate(node: ast.AST) -> float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        if isinstance(node.op, ast.Pow) and abs(_evaluate(node.right)) > 100:
            raise ValueError("exponent too large")
        return _OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))  # type: ignore[operator]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.operand))  # type: ignore[operator]
    raise ValueError(f"unsupported expression element: {type(node).__name__}")


def calculator(expression: str) -> float:
    """Evaluate an arithmetic expression exactly as written.

    Args:
        expression: numbers with + - * / % ** and parentheses, e.g. "0.125 * 1840".
    """
    return _evaluate(ast.parse(expression, mode="eval").body)


def file_reader(folder: Path) -> accord.Tool:
    """A tool that reads text files inside ``folder`` only."""
    root = folder.resolve()

    def read_file(name: str) -> str:
        """Read a text file from the shared folder.

        Args:
            name: the file's name inside the folder, e.g. "notes.txt".
        """
        path = (root / name).resolve()
        if not path.is_relative_to(root):
            raise PermissionError(f"{name!r} is outside the shared folder")
        return path.read_text(encoding="utf-8")[:10_000]

    return accord.Tool(read_file, timeout=5)


def build(folder: Path) -> accord.Graph:
    agent = accord.Agent(
        "assistant",
        instructions="Use the calculator for arithmetic and read_file for files. Be brief.",
        tools=[calculator, file_reader(folder)],
        max_tool_calls=6,
    )
    return accord.Graph("tools").add(agent)


async def run(task: str, model: accord.Backend, folder: Path) -> accord.RunResult:
    return await build(folder).run(task, model)


if __name__ == "__main__":
    args = parse(__doc__.splitlines()[0], TASK)
    result = asyncio.run(run(args.task, backend(args), Path.cwd()))
    print(safe(result.text))
