"""The graph the store tests record, crash and resume, and a command line to run it in a subprocess.

The graph has parallel branches and a cycle: ``planner`` fans out to ``a`` and ``b``, a step
``join`` waits for both, then ``reviser`` and ``critic`` loop until the critic approves in round 2,
and ``final`` answers. The model is a pure function of (agent, round, prompt): every reply embeds a
hash of the prompt it answered, so a resumed run that rebuilt a prompt differently produces a
different transcript. Each model call appends ``agent round`` to a call log (``O_APPEND``, one
``write`` per line) before it returns, which is how tests count calls across processes.

Command line (used by the crash tests)::

    python _scenario.py run|resume --store DB --run-id ID --seed N --calls LOG
        [--durability sync|async] [--delay S] [--out RESULT.json]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import accord
from accord.backends.base import Request
from accord.testing import FunctionBackend

APPROVE_AT = 2
ACTIVATIONS = 11
"""planner, a, b, join, 3 x reviser, 3 x critic, final."""


def build_graph(*, extra: bool = False) -> accord.Graph:
    """The scenario graph (``extra`` adds one more agent after ``final``)."""
    g = accord.Graph("scenario")

    @accord.step
    def join(messages: list[accord.Message]) -> str:
        return " + ".join(sorted(m.text for m in messages))

    g.add(
        accord.Agent("planner"),
        accord.Agent("a"),
        accord.Agent("b"),
        join,
        accord.Agent("reviser"),
        accord.Agent("critic", output=accord.Critique),
        accord.Agent("final"),
    )
    g.connect("planner", "a")
    g.connect("planner", "b")
    g.connect("a", "join")
    g.connect("b", "join")
    g.connect("join", "reviser")
    g.connect("reviser", "critic")
    g.connect("critic", "reviser", when=lambda m: not m.payload.approved, max_rounds=3)
    g.connect("critic", "final", when=lambda m: m.payload.approved)
    if extra:
        g.add(accord.Agent("extra"))
        g.connect("final", "extra")
    g.set_exit("extra" if extra else "final")
    return g


def reply(request: Request) -> str:
    """The scripted model: a pure function of the request."""
    digest = hashlib.sha256("\x1e".join(m.content for m in request.messages).encode()).hexdigest()[
        :8
    ]
    if request.agent == "critic":
        approved = request.round >= APPROVE_AT
        return json.dumps(
            {"approved": approved, "issues": [] if approved else [f"fix {request.round} {digest}"]}
        )
    return f"{request.agent} round {request.round} saw {digest}"


def backend(seed: int = 0, calls: str | None = None, delay: float = 0.0) -> FunctionBackend:
    """A FunctionBackend answering with :func:`reply` after a seeded small delay."""
    fd = os.open(calls, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644) if calls else None

    async def answer(request: Request) -> str:
        pause = random.Random(f"{seed}/{request.agent}/{request.round}").random() * 0.004
        await asyncio.sleep(pause + delay)
        if fd is not None:
            os.write(fd, f"{request.agent} {request.round}\n".encode())
        return reply(request)

    return FunctionBackend(answer)


def transcript_facts(messages: list[Any]) -> list[dict[str, Any]]:
    """What must be equal between an uninterrupted and a resumed run (not the timestamps)."""
    return [
        {
            "id": m.id,
            "sender": m.sender,
            "round": m.round,
            "text": m.text,
            "payload": None if m.payload is None else m.payload.model_dump(mode="json"),
            "parents": list(m.parents),
            "recipients": list(m.recipients),
            "usage": m.usage.model_dump(mode="json"),
        }
        for m in messages
    ]


def count_calls(path: str) -> dict[tuple[str, int], int]:
    counts: dict[tuple[str, int], int] = {}
    if not os.path.exists(path):
        return counts
    with open(path) as f:
        for line in f:
            agent, rnd = line.split()
            counts[(agent, int(rnd))] = counts.get((agent, int(rnd)), 0) + 1
    return counts


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    graph = build_graph()
    model = backend(args.seed, args.calls, args.delay)
    if args.command == "run":
        result = await graph.run(
            args.task,
            model,
            run_id=args.run_id,
            store=args.store,
            durability=args.durability,
        )
    else:
        result = await graph.resume(
            args.run_id, model, store=args.store, durability=args.durability
        )
    return {
        "status": result.status,
        "transcript": transcript_facts(result.transcript),
        "usage": result.usage.model_dump(mode="json"),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["run", "resume"])
    parser.add_argument("--store", required=True)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calls", default=None)
    parser.add_argument("--durability", default="sync")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--out", default=None)
    parser.add_argument("--task", default="write a limerick")
    args = parser.parse_args(argv)
    summary = asyncio.run(_main(args))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(summary, f)


def spawn(
    command: str,
    *,
    store: Path,
    run_id: str,
    calls: Path,
    seed: int = 0,
    durability: str = "sync",
    delay: float = 0.0,
    out: Path | None = None,
    crash_at: str | None = None,
    wait: bool = True,
    task: str = "write a limerick",
) -> subprocess.CompletedProcess[str] | subprocess.Popen[str]:
    """Run ``tests/store/_scenario.py`` in a fresh interpreter (see its docstring)."""
    env = {k: v for k, v in os.environ.items() if k != "ACCORD_CRASH_AT"}
    if crash_at:
        env["ACCORD_CRASH_AT"] = crash_at
    args = [
        sys.executable,
        __file__,
        command,
        "--store",
        str(store),
        "--run-id",
        run_id,
        "--calls",
        str(calls),
        "--seed",
        str(seed),
        "--durability",
        durability,
        "--delay",
        str(delay),
        "--task",
        task,
    ]
    if out is not None:
        args += ["--out", str(out)]
    if not wait:
        return subprocess.Popen(args, env=env, text=True, stderr=subprocess.PIPE)
    return subprocess.run(args, env=env, text=True, capture_output=True, timeout=60)


if __name__ == "__main__":
    sys.exit(main())
