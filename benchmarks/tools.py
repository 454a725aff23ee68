"""Per-call overhead of accord's tool loop, against calling the function directly.

Run:  python benchmarks/tools.py            (add --quick for a short run)

An instant fake model (FunctionBackend) drives one Agent with one tool, ``add(a, b)``:
- direct: ``add(1, 2)`` called in Python;
- invoke: ``await Tool(add).invoke('{"a": 1, "b": 2}')`` (argument parsing and validation,
  a worker thread for the sync function, serialisation of the result), and with
  ``thread=False`` (the function called on the event loop);
- loop, sequential: the model asks for one call per reply, 10 replies, then answers: each tool
  call also costs one more model request through the run (budgets, usage, events);
- loop, parallel: the model asks for 10 calls in one reply, then answers.

Loop figures are (run with tools - run of the same agent that answers at once) / 10 calls, so
they are the tool loop's own cost per call. Events are on (a sink collects them); no run store.
Each figure is the median of several repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

import accord
from accord.backends.base import Request
from accord.testing import FunctionBackend, tool_call
from accord.tools import Tool

CALLS = 10


def add(a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first.
        b: the second.
    """
    return a + b


def model(parallel: bool) -> FunctionBackend:
    def reply(request: Request) -> Any:
        done = sum(1 for m in request.messages if m.role == "tool")
        if not request.tools or done >= CALLS:
            return "done"
        if parallel:
            return [tool_call("add", a=i, b=1) for i in range(CALLS)]
        return [tool_call("add", a=done, b=1)]

    return FunctionBackend(reply)


def graph(with_tools: bool, thread: bool = True) -> accord.Graph:
    tools = [Tool(add, thread=thread)] if with_tools else []
    agent = accord.Agent("a", tools=tools, max_tool_calls=CALLS)
    return accord.Graph("g").add(agent)


async def per_run_us(g: accord.Graph, backend: FunctionBackend, runs: int) -> float:
    events: list[Any] = []
    start = time.perf_counter()
    for _ in range(runs):
        await g.run("task", backend, on_event=events.append, durability="off")
    return (time.perf_counter() - start) / runs * 1e6


async def invoke_us(n: int, thread: bool = True) -> float:
    tool = Tool(add, thread=thread)
    start = time.perf_counter()
    for _ in range(n):
        await tool.invoke('{"a": 1, "b": 2}')
    return (time.perf_counter() - start) / n * 1e6


def direct_us(n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        add(1, 2)
    return (time.perf_counter() - start) / n * 1e6


async def main(quick: bool) -> None:
    runs, repeats = (50, 3) if quick else (300, 7)
    plain = graph(False)
    tooled = graph(True)
    inline = graph(True, thread=False)
    base, seq, par, inv, direct = [], [], [], [], []
    seq_inline, par_inline, inv_inline = [], [], []
    for _ in range(repeats):
        base.append(await per_run_us(plain, model(False), runs))
        seq.append(await per_run_us(tooled, model(False), runs))
        par.append(await per_run_us(tooled, model(True), runs))
        inv.append(await invoke_us(runs * CALLS))
        seq_inline.append(await per_run_us(inline, model(False), runs))
        par_inline.append(await per_run_us(inline, model(True), runs))
        inv_inline.append(await invoke_us(runs * CALLS, thread=False))
        direct.append(direct_us(runs * CALLS * 10))
    b = statistics.median(base)

    def per_call(samples: list[float]) -> float:
        return (statistics.median(samples) - b) / CALLS

    print(f"direct call                       {statistics.median(direct):9.2f} µs per call")
    print(f"run without tools                 {b:9.1f} µs per run")
    print("                                  thread=True  thread=False")
    print(
        f"Tool.invoke (µs per call)         {statistics.median(inv):11.1f}"
        f"  {statistics.median(inv_inline):12.1f}"
    )
    print(f"loop, sequential (µs per call)    {per_call(seq):11.1f}  {per_call(seq_inline):12.1f}")
    print(
        f"loop, {CALLS} parallel (µs per call)  {per_call(par):11.1f}  {per_call(par_inline):12.1f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))
