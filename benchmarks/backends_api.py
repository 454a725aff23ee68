"""API overhead of OpenAIBackend over the bare AsyncOpenAI client, on a loopback server.

Run:  python benchmarks/backends_api.py                 (500 requests, concurrency 16, 9 rounds)
      python benchmarks/backends_api.py --quick         (a short run)

The loopback server is the tests' fault server (tests/backends/fault_server.py) in its own process,
answering every ``POST /v1/chat/completions`` at once with the same small completion. Both sides
send the same requests from the same number of concurrent workers over one HTTP client each: the
bare side calls ``AsyncOpenAI(max_retries=0).chat.completions.create`` and reads
``choices[0].message.content``; accord's side calls ``OpenAIBackend.complete`` with its retry layer,
a ``max_concurrency`` limit equal to the worker count, response checks and usage accounting on.
Rounds alternate which side goes first after a warm-up; the figures are the median round (best
in brackets) and the median of the per-round accord/bare ratios.
The target is accord ≤ 10% more wall time than the bare client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "backends"))

from fault_server import FaultServer, Reply, completion  # noqa: E402

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello."},
]


async def serve(port: int) -> None:
    async with FaultServer(default=Reply.json(completion("Hello there.")), port=port):
        print("ready", flush=True)
        await asyncio.Event().wait()


async def run_workers(total: int, concurrency: int, call: Callable[[], Awaitable[str]]) -> float:
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            if not await call():
                raise RuntimeError("empty answer")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def bench(base_url: str, total: int, concurrency: int, rounds: int) -> dict[str, list[float]]:
    import openai

    from accord.backends import ChatMessage, Request
    from accord.backends.openai import OpenAIBackend

    client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-bench", max_retries=0, timeout=60)
    backend = OpenAIBackend(  # the loopback fake stands in for a hosted API: not local
        "bench-model",
        base_url=base_url,
        api_key="sk-bench",
        max_concurrency=concurrency,
        local=False,
    )
    request = Request(
        messages=tuple(ChatMessage(role=m["role"], content=m["content"]) for m in MESSAGES)
    )  # type: ignore[arg-type]

    async def bare() -> str:
        reply = await client.chat.completions.create(model="bench-model", messages=MESSAGES)  # type: ignore[arg-type]
        return reply.choices[0].message.content or ""

    async def accord_call() -> str:
        return (await backend.complete(request)).text

    await run_workers(100, concurrency, bare)  # warm-up: connections, imports, caches
    await run_workers(100, concurrency, accord_call)
    times: dict[str, list[float]] = {"bare": [], "accord": []}
    for i in range(rounds):  # alternate which side goes first, so load drift hits both alike
        order = (("bare", bare), ("accord", accord_call))
        for name, call in order if i % 2 == 0 else order[::-1]:
            times[name].append(await run_workers(total, concurrency, call))
    await client.close()
    await backend.aclose()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        asyncio.run(serve(args.serve))
        return
    rounds = 3 if args.quick else args.rounds
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        os.environ.pop(name, None)
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"

    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        times = asyncio.run(
            bench(f"http://127.0.0.1:{port}/v1", args.requests, args.concurrency, rounds)
        )
    finally:
        server.terminate()
        server.wait()

    bare, acc = statistics.median(times["bare"]), statistics.median(times["accord"])
    n = args.requests
    print(f"{n} requests, concurrency {args.concurrency}, {rounds} rounds (median [best])")
    print(
        f"  bare AsyncOpenAI : {bare:.3f} s [{min(times['bare']):.3f}]  {bare / n * 1e6:.0f} µs/request"
    )
    print(
        f"  OpenAIBackend    : {acc:.3f} s [{min(times['accord']):.3f}]  {acc / n * 1e6:.0f} µs/request"
    )
    ratios = [a / b for a, b in zip(times["accord"], times["bare"], strict=True)]
    print(f"  accord overhead  : {100 * (acc / bare - 1):+.1f}% wall time (medians; target ≤ +10%)")
    print(
        f"  per-round ratio  : {100 * (statistics.median(ratios) - 1):+.1f}% (median of accord/bare per round)"
    )
    print("  rounds bare   :", " ".join(f"{t:.3f}" for t in times["bare"]))
    print("  rounds accord :", " ".join(f"{t:.3f}" for t in times["accord"]))


if __name__ == "__main__":
    main()
