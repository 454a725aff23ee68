"""Graphs and backends the batch tests (and their subprocesses and Ray workers) share.

A chain of three agents on a FunctionBackend whose answer is a function of the request only, so
runs are deterministic. ``CALL_LOG`` (an environment variable naming a file) makes every model
call append ``task agent pid`` to that file; ``BATCH_DELAY`` makes each call sleep; ``DIE_AT``
names a task whose second agent kills its process once (a marker file next to the log keeps it
from happening twice); ``BUILD_LOG`` gets a line each time :func:`chain` builds the graph.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import accord
from accord.backends.base import Request
from accord.testing import FunctionBackend


def _task_of(request: Request) -> str:
    for m in request.messages:
        if m.role == "user":
            for line in m.content.splitlines():
                if line.startswith("TASK "):
                    return line.split()[1]
    return "?"


def _log_and_maybe_die(task: str, agent: str) -> None:
    log = os.environ.get("CALL_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{task} {agent} {os.getpid()}\n")
    die_at = os.environ.get("DIE_AT")
    if die_at and log and task == die_at and agent == "b":
        marker = Path(log + ".died")
        if not marker.exists():
            marker.write_text("x")
            os._exit(1)


async def answer(request: Request) -> str:
    task = _task_of(request)
    _log_and_maybe_die(task, str(request.agent))
    if task.startswith("fail"):
        raise ValueError(f"no answer for {task}")
    delay = float(os.environ.get("BATCH_DELAY", "0"))
    if delay:
        await asyncio.sleep(delay)
    digest = hashlib.sha256(f"{task}/{request.agent}/{len(request.messages)}".encode())
    return f"{request.agent}:{task}:{digest.hexdigest()[:8]}"


def chain() -> accord.Graph:
    """Three agents in a row, each with the deterministic backend (``BUILD_LOG`` counts builds)."""
    build_log = os.environ.get("BUILD_LOG")
    if build_log:
        with open(build_log, "a") as f:
            f.write(f"{os.getpid()}\n")
    backend = FunctionBackend(answer)
    g = accord.Graph("chain")
    a, b, c = (accord.Agent(n, backend=backend) for n in ("a", "b", "c"))
    g.add(a, b, c)
    g.connect(a, b).connect(b, c)
    return g
