"""accord end to end on a real small model served by llama-cpp-python, at default settings.

Not part of CI (it needs the 491 MB Qwen2.5-Coder-0.5B-Instruct GGUF that
``../shared/tools/real-model.sh`` assembles into ``~/.cache/accord/models/``). It starts
llama-cpp-python's OpenAI-compatible server on 127.0.0.1, then runs:

* every built-in pattern on N short tasks (arithmetic, one-line facts, small code), one run at a
  time, then ``--concurrent`` runs at once on one shared backend;
* every example in ``examples/`` (``embed_fastapi`` through FastAPI's test client);
* the README's ``accord run`` commands, pointed at the server.

Everything runs at default settings: the backend is ``accord.backend("openai:...", base_url=...)``
with no options, the patterns are built as ``accord run`` builds them. Per pattern it reports
completed runs, framework errors (timeouts, validation failures after the schema was enforced,
decode errors, crashes: anything that made a run fail; a wrong answer is not one), wall time and
tokens, and prints the failures with their error class so they can be triaged.

    python benchmarks/real_model.py                               # everything (slow on 2 cores)
    python benchmarks/real_model.py --patterns debate,judge_panel --tasks 3 --concurrent 0
    python benchmarks/real_model.py --skip-patterns --skip-concurrent   # examples and README only
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import accord  # noqa: E402
from accord.cli import build_pattern  # noqa: E402

sys.path.insert(0, str(ROOT / "benchmarks"))
from _llama_server import (  # noqa: E402
    ALIAS,
    MODEL_FILE,
    Server,
    find_model,
    free_port,
    start_server,
)

TASKS = (
    "What is 17 * 24?",
    "What is 125 + 378?",
    "What is 96 / 8?",
    "What is the capital of France?",
    "Which planet is closest to the Sun?",
    "What is the chemical symbol for gold?",
    "Write a Python function add(a, b) that returns the sum of a and b.",
    "Write a Python function is_even(n) that returns True when n is even.",
    "Write a one-line Python expression that reverses the string s.",
    "How many days are in a leap year?",
)

PATTERNS = (
    "debate",
    "critique",
    "plan_solve_verify",
    "moa",
    "round_robin",
    "selector_chat",
    "judge_panel",
    "self_consistency",
)


# ---------------------------------------------------------------------- patterns


def build(pattern: str) -> Any:
    """A pattern as ``accord run PATTERN`` builds it (selector_chat: the CLI has no flag for it)."""
    if pattern == "selector_chat":
        from accord.graphs import patterns

        agents = [accord.Agent(f"agent_{i + 1}") for i in range(3)]

        def next_in_turn(turns: Any, names: Any) -> str:
            return str(names[len(turns) % len(names)])

        return patterns.selector_chat(agents, next_in_turn, max_turns=4)
    return build_pattern(pattern, 3, None)


@dataclass
class Tally:
    runs: int = 0
    completed: int = 0
    errors: list[str] = field(default_factory=list)
    wall_s: float = 0.0
    tokens: int = 0
    requests: int = 0
    estimated: bool = False


async def one_run(graph: Any, task: str, backend: Any, tally: Tally) -> None:
    tally.runs += 1
    try:
        result = await graph.run(task, backend)
    except accord.AccordError as exc:
        tally.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
        return
    except Exception as exc:  # a crash is a framework error too
        tally.errors.append(f"crash {type(exc).__name__}: {exc}\n{traceback.format_exc()[-800:]}")
        return
    tally.tokens += result.usage.total_tokens
    tally.requests += result.usage.requests
    tally.estimated |= result.usage.estimated
    if result.status == "completed":
        tally.completed += 1
    else:
        tally.errors.append(f"status {result.status}: {str(result.stop_reason)[:200]}")


async def run_patterns(
    patterns: list[str], tasks: list[str], concurrent: int, server: Server
) -> list[tuple[str, str, Tally]]:
    """Each pattern on every task one at a time (``concurrent == 0``), or ``concurrent`` runs
    of it at once on one shared backend."""
    rows: list[tuple[str, str, Tally]] = []
    for pattern in patterns if not concurrent else ():
        backend = accord.backend(f"openai:{ALIAS}", base_url=server.base_url)
        tally = Tally()
        started = time.perf_counter()
        for task in tasks:
            await one_run(build(pattern), task, backend, tally)
            print(
                f"  {pattern} seq {tally.runs}/{len(tasks)} errors={len(tally.errors)}", flush=True
            )
        tally.wall_s = time.perf_counter() - started
        rows.append((pattern, "sequential", tally))
        report_errors(pattern, tally)
        print("  row " + row(pattern, "sequential", tally), flush=True)  # kept if stopped later
    for pattern in patterns if concurrent else ():
        backend = accord.backend(f"openai:{ALIAS}", base_url=server.base_url)
        tally = Tally()
        before = server.posts()
        started = time.perf_counter()
        batch = [tasks[i % len(tasks)] for i in range(concurrent)]
        await asyncio.gather(*(one_run(build(pattern), t, backend, tally) for t in batch))
        tally.wall_s = time.perf_counter() - started
        resent = server.posts() - before - tally.requests
        if resent:
            tally.errors.append(f"{resent} request(s) reached the server beyond those counted")
        rows.append((pattern, f"{concurrent} at once", tally))
        report_errors(pattern, tally)
        print("  row " + row(pattern, f"{concurrent} at once", tally), flush=True)
        print(f"  {pattern} x{concurrent}: errors={len(tally.errors)}", flush=True)
    return rows


def report_errors(what: str, tally: Tally) -> None:
    for error in tally.errors:
        print(f"  ! {what}: {error}", flush=True)


# ---------------------------------------------------------------------- examples, README


README_TASK = "What is 17 * 24?"
"""What the README's commands that read a task from stdin or a file (``-``, ``--task-file``) get."""


def run_command(
    argv: list[str], timeout: float, stdin: str | None = None, cwd: Path = ROOT
) -> tuple[bool, str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_PROXY": "127.0.0.1,localhost"}
    started = time.perf_counter()
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:g} s", time.perf_counter() - started
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    return (
        done.returncode == 0,
        f"exit {done.returncode}: " + " | ".join(tail),
        (time.perf_counter() - started),
    )


LOCAL_ONLY = frozenset({"cooperative_decoding"})
"""Examples that need local transformers models (several models' logits), not a server."""


def example_commands(server: Server) -> list[tuple[str, Callable[[], tuple[bool, str, float]]]]:
    model = f"openai:{ALIAS}"
    out: list[tuple[str, Callable[[], tuple[bool, str, float]]]] = []
    for path in sorted((ROOT / "examples").glob("*.py")):
        if path.name.startswith("_") or path.stem in LOCAL_ONLY:
            continue
        if path.stem == "embed_fastapi":
            out.append((path.name, lambda: fastapi_example(server)))
            continue
        argv = [sys.executable, str(path), "--model", model, "--base-url", server.base_url]
        out.append((path.name, lambda argv=argv: run_command(argv, 900)))
    return out


def fastapi_example(server: Server) -> tuple[bool, str, float]:
    started = time.perf_counter()
    try:
        from fastapi.testclient import TestClient
    except ImportError:
        return False, "fastapi is not installed (pip install fastapi)", 0.0
    sys.path.insert(0, str(ROOT / "examples"))
    from embed_fastapi import create_app

    backend = accord.backend(f"openai:{ALIAS}", base_url=server.base_url)
    with TestClient(create_app(backend)) as client:
        response = client.post("/ask", json={"task": "Name a prime above 100."})
    ok = response.status_code == 200
    return ok, f"HTTP {response.status_code}: {response.text[:200]}", time.perf_counter() - started


def readme_commands(server: Server) -> list[tuple[str, Callable[[], tuple[bool, str, float]]]]:
    """The README's ``accord run`` lines without placeholders, pointed at the server."""
    out: list[tuple[str, Callable[[], tuple[bool, str, float]]]] = []
    seen: set[str] = set()
    text = (ROOT / "README.md").read_text().replace("\\\n", " ")  # join continued lines
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        match = re.search(r"\baccord run .*", line)
        if not match or "[" in line or "..." in line:
            continue
        words = shlex.split(match.group(0))
        if "path/to" in " ".join(words) or "./" in " ".join(words):
            continue
        kept: list[str] = []
        skip = False
        for word in words:
            if skip:
                skip = False
                continue
            if word in ("--model", "-m", "--base-url"):
                skip = True
                continue
            kept.append(word)
        command = kept + ["--model", f"openai:{ALIAS}", "--base-url", server.base_url]
        key = " ".join(command)
        if key in seen:
            continue
        seen.add(key)
        if "--concurrency" in kept:
            continue  # the README's line for servers with many slots (vLLM); this one has one
        argv = [sys.executable, "-m", "accord.cli", *command[1:]]
        stdin = README_TASK if "-" in kept else None
        cwd = ROOT
        if "--task-file" in kept:  # the README's file of a task, in a folder of its own
            cwd = Path(tempfile.mkdtemp(prefix="accord-readme-"))
            (cwd / kept[kept.index("--task-file") + 1]).write_text(README_TASK)
        out.append(
            (
                " ".join(shlex.quote(w) for w in kept),
                lambda a=argv, i=stdin, c=cwd: run_command(a, 900, i, c),
            )
        )
    return out


# ---------------------------------------------------------------------- main


def row(pattern: str, mode: str, t: Tally) -> str:
    est = " (est.)" if t.estimated else ""
    return (
        f"| {pattern} | {mode} | {t.completed}/{t.runs} | {len(t.errors)} | "
        f"{t.wall_s:.0f} | {t.tokens}{est} | {t.requests} |"
    )


def table(rows: list[tuple[str, str, Tally]]) -> str:
    lines = [
        "| pattern | mode | completed | framework errors | wall s | tokens | requests |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    lines += [row(pattern, mode, t) for pattern, mode, t in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help=f"path of {MODEL_FILE} (default: the cache)")
    parser.add_argument("--patterns", default=",".join(PATTERNS), help="comma-separated subset")
    parser.add_argument("--tasks", type=int, default=len(TASKS), help="tasks per pattern (1-10)")
    parser.add_argument("--concurrent", type=int, default=20, help="runs at once (0: skip)")
    parser.add_argument(
        "--concurrent-patterns", default=None, help="patterns for the concurrent phase"
    )
    parser.add_argument("--skip-patterns", action="store_true")
    parser.add_argument(
        "--skip-sequential", action="store_true", help="only the runs at once (and the rest)"
    )
    parser.add_argument("--skip-examples", action="store_true")
    parser.add_argument("--skip-readme", action="store_true")
    parser.add_argument(
        "--threads", type=int, default=1, help="llama.cpp threads (2 on 2 busy cores: 15x slower)"
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--out", help="also write the report (markdown) here")
    args = parser.parse_args()

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the server
    model = find_model(args.model)
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"accord-real-model-{os.getpid()}.log"
    server = start_server(model, args.port or free_port(), args.threads, log)
    print(f"server {server.base_url} (log {log})", flush=True)
    report: list[str] = []
    try:
        patterns = [p for p in args.patterns.split(",") if p]
        tasks = list(TASKS[: max(1, min(args.tasks, len(TASKS)))])
        if not args.skip_patterns and not args.skip_sequential:
            rows = asyncio.run(run_patterns(patterns, tasks, 0, server))
            report.append(table(rows))
        if args.concurrent and not args.skip_patterns:
            chosen = (args.concurrent_patterns or args.patterns).split(",")
            rows = asyncio.run(
                run_patterns([p for p in chosen if p], tasks, args.concurrent, server)
            )
            report.append(table(rows))
        commands: list[tuple[str, Callable[[], tuple[bool, str, float]]]] = []
        if not args.skip_examples:
            commands += [(f"examples/{n}", f) for n, f in example_commands(server)]
        if not args.skip_readme:
            commands += readme_commands(server)
        if commands:
            lines = ["| command | ok | wall s | detail |", "| --- | --- | --- | --- |"]
            for name, run in commands:
                ok, detail, wall = run()
                print(f"  {name}: {'ok' if ok else 'FAILED ' + detail}", flush=True)
                shown = "" if ok else detail.replace("|", "/")[:160]
                lines.append(f"| `{name}` | {'yes' if ok else 'NO'} | {wall:.0f} | {shown} |")
            report.append("\n".join(lines))
    finally:
        server.stop()
    text = "\n\n".join(report)
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
