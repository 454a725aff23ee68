"""Load test of ``accord serve`` on loopback, and the cost of OpenTelemetry instrumentation.

Run:  python benchmarks/serve.py            (add --quick for a short run)

Server: a 3-agent chain on FunctionBackend whose every call sleeps 50 ms, served by uvicorn in a
subprocess (``accord.serve.app``, recording to a fresh run store). Clients (httpx, in this
process):

- load: ``--clients`` (200) concurrent streaming chat-completions clients, each making
  ``--requests`` requests one after another; latency is request sent -> ``[DONE]`` read;
- baseline: the same number of concurrent ``graph.run`` calls in-process (same backend, same
  store options) — the difference of the percentiles is the latency the server adds;
- disconnects: ``--drop`` streaming clients that read the first chunk and go away mid-run.

Checks: every request has exactly one run in the store (0 lost, 0 duplicated), dropped runs are
"cancelled", and after the dust settles every model call that started has finished or was
cancelled (0 orphaned calls). Also reported: requests/s and the server's peak RSS.

Instrumentation: µs per activation of a 10-agent chain (instant backend; the fastest of 6 stretches
of 50 runs) with tracing off, on (SDK provider, spans to a no-op exporter), and off on the code of
``--baseline`` (a checkout without the tracing hooks), each in its own interpreter, alternated,
medians over ``--repeats`` reported, with the median of the paired off/baseline ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

SERVER = r"""
import asyncio, json, sys
import uvicorn
import accord, accord.serve
from accord.testing import FunctionBackend

stats = {"started": 0, "finished": 0, "cancelled": 0}

async def model(request):
    stats["started"] += 1
    try:
        await asyncio.sleep(0.05)
    except asyncio.CancelledError:
        stats["cancelled"] += 1
        raise
    stats["finished"] += 1
    return "the answer is forty two" if request.agent == "c" else "thinking it over"

graph = accord.Graph("trio")
graph.add(accord.Agent("a"), accord.Agent("b"), accord.Agent("c"))
graph.connect("a", "b"); graph.connect("b", "c")
inner = accord.serve.app([graph], backend=FunctionBackend(model), store=sys.argv[2], max_runs=1024)

async def app(scope, receive, send):
    if scope["type"] == "http" and scope["path"] == "/bench/stats":
        body = json.dumps({**stats, "active": len(inner.state.runs.active)}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
        return
    await inner(scope, receive, send)

uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", backlog=4096, timeout_keep_alive=60)
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def stream_once(client: Any, url: str, drop: bool = False) -> tuple[str, float, bool]:
    body = {
        "model": "trio",
        "messages": [{"role": "user", "content": "What is 6 x 7?"}],
        "stream": True,
    }
    t0 = time.perf_counter()
    async with client.stream("POST", url + "/v1/chat/completions", json=body) as reply:
        if reply.status_code != 200:
            raise RuntimeError(f"status {reply.status_code}: {(await reply.aread())[:200]!r}")
        run_id = reply.headers["x-accord-run-id"]
        done = False
        async for line in reply.aiter_lines():
            if drop and line.startswith("data: "):
                return run_id, time.perf_counter() - t0, False  # leaving closes the connection
            if line == "data: [DONE]":
                done = True
    return run_id, time.perf_counter() - t0, done


async def clients_run(
    url: str, clients: int, requests: int, start_at: float = 0.0
) -> list[tuple[str, float, bool]]:
    """``clients`` concurrent streaming clients, ``requests`` each (one client process's share),
    starting at unix time ``start_at``."""
    import httpx

    await asyncio.sleep(max(0.0, start_at - time.time()))
    limits = httpx.Limits(max_connections=clients + 10, max_keepalive_connections=clients + 10)
    async with httpx.AsyncClient(limits=limits, timeout=300) as client:

        async def worker() -> list[tuple[str, float, bool]]:
            return [await stream_once(client, url) for _ in range(requests)]

        batches = await asyncio.gather(*(worker() for _ in range(clients)))
    return [r for batch in batches for r in batch]


def load(url: str, clients: int, requests: int, drop: int, procs: int) -> dict[str, Any]:
    """The load phase in ``procs`` client processes, then the disconnect phase."""
    import httpx

    shares = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start_at = time.time() + 2.0 + procs  # every client process has started by then
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "--client", url, str(n), str(requests), str(start_at)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in shares
    ]
    outs = [json.loads(w.communicate()[0]) for w in workers]
    results = [tuple(r) for out in outs for r in out["results"]]
    wall = max(out["end"] for out in outs) - start_at

    async def disconnects() -> tuple[list[str], list[str], dict[str, Any]]:
        async with httpx.AsyncClient(
            limits=httpx.Limits(max_connections=drop + 10), timeout=120
        ) as client:
            dropped = await asyncio.gather(
                *(stream_once(client, url, drop=True) for _ in range(drop))
            )
            await asyncio.sleep(1.0)  # let cancellations land
            stats = (await client.get(url + "/bench/stats")).json()
            replies = await asyncio.gather(
                *(client.get(f"{url}/v1/runs/{rid}") for rid, _, _ in dropped)
            )
        return [d[0] for d in dropped], [r.json()["status"] for r in replies], stats

    dropped, statuses, stats = asyncio.run(disconnects())
    return {
        "results": results,
        "wall": wall,
        "dropped": dropped,
        "dropped_status": statuses,
        "stats": stats,
        "client_cpu": sum(out["cpu"] for out in outs),
    }


async def in_process(clients: int, requests: int, store: str) -> list[float]:
    import accord
    from accord.testing import FunctionBackend

    async def model(request: Any) -> str:
        await asyncio.sleep(0.05)
        return "the answer is forty two" if request.agent == "c" else "thinking it over"

    graph = accord.Graph("trio")
    graph.add(accord.Agent("a"), accord.Agent("b"), accord.Agent("c"))
    graph.connect("a", "b")
    graph.connect("b", "c")
    backend = FunctionBackend(model)

    async def one() -> float:
        t0 = time.perf_counter()
        await graph.run(
            "What is 6 x 7?",
            backend,
            store=store,
            durability="async",
            on_event=lambda e: None,
            stream_tokens=True,
        )
        return time.perf_counter() - t0

    async def worker() -> list[float]:
        return [await one() for _ in range(requests)]

    await one()
    return [t for batch in await asyncio.gather(*(worker() for _ in range(clients))) for t in batch]


def serve_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    tmp = Path(tempfile.mkdtemp(prefix="accord-serve-bench-"))
    port = 18000 + os.getpid() % 1000
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ACCORD_DURABILITY": "off"}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), str(tmp / "runs.db")], env=env
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
        warm = asyncio.run(clients_run(url, 1, 1))[0][0]
        cpu0 = cpu_seconds(proc.pid)
        out = load(url, args.clients, args.requests, args.drop, args.client_procs)
        cpu = cpu_seconds(proc.pid) - cpu0
        rss = peak_rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    base = asyncio.run(in_process(args.clients, args.requests, str(tmp / "inproc.db")))

    from accord.store import SQLiteStore

    store = SQLiteStore(tmp / "runs.db")
    stored = store.list_runs(limit=1_000_000)
    ids = [r.run_id for r in stored]
    sent = [warm] + [rid for rid, _, _ in out["results"]] + out["dropped"]
    by_status: dict[str, int] = {}
    for r in stored:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    served = [t for _, t, _ in out["results"]]
    stats = out["stats"]
    return {
        "requests": len(out["results"]),
        "completed_streams": sum(1 for _, _, ok in out["results"] if ok),
        "requests_per_s": len(out["results"]) / out["wall"],
        "served_p50_ms": 1000 * percentile(served, 0.5),
        "served_p99_ms": 1000 * percentile(served, 0.99),
        "inprocess_p50_ms": 1000 * percentile(base, 0.5),
        "inprocess_p99_ms": 1000 * percentile(base, 0.99),
        "added_p50_ms": 1000 * (percentile(served, 0.5) - percentile(base, 0.5)),
        "added_p99_ms": 1000 * (percentile(served, 0.99) - percentile(base, 0.99)),
        "server_peak_rss_mb": rss,
        "dropped": len(out["dropped"]),
        "dropped_cancelled": sum(1 for s in out["dropped_status"] if s == "cancelled"),
        "server_cpu_ms_per_request": 1000 * cpu / (len(out["results"]) + len(out["dropped"])),
        "client_cpu_ms_per_request": 1000 * out["client_cpu"] / len(out["results"]),
        "lost_runs": len(set(sent) - set(ids)),
        "duplicated_runs": (len(ids) - len(set(ids)))
        + (len(sent) - len(set(sent)))
        + len(set(ids) - set(sent)),
        "stored_by_status": by_status,
        "model_calls": stats,
        "orphaned_model_calls": stats["started"] - stats["finished"] - stats["cancelled"],
    }


OTEL = r"""
import asyncio, sys, time, statistics
import accord
from accord.testing import FunctionBackend
mode = sys.argv[1]
if mode == "on":
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
    class Drop(SpanExporter):
        def export(self, spans): return SpanExportResult.SUCCESS
    provider = TracerProvider(); provider.add_span_processor(SimpleSpanProcessor(Drop()))
    accord.instrument(provider)
g = accord.Graph("chain")
names = [f"a{i}" for i in range(10)]
g.add(*(accord.Agent(n) for n in names))
for s, d in zip(names, names[1:]): g.connect(s, d)
b = FunctionBackend(lambda r: "ok")
async def main():
    for _ in range(50): await g.run("t", b, durability="off")
    chunks = []
    for _ in range(6):
        t0 = time.perf_counter()
        for _ in range(50): await g.run("t", b, durability="off")
        chunks.append((time.perf_counter() - t0) / 500 * 1e6)
    return min(chunks)  # the least disturbed stretch: other work shares the machine
print(asyncio.run(main()))
"""


def otel_benchmark(args: argparse.Namespace) -> dict[str, float]:
    runs: dict[str, list[float]] = {"off": [], "on": [], "baseline_off": []}
    modes = [("off", ROOT), ("on", ROOT)] + (
        [("baseline_off", Path(args.baseline))] if args.baseline else []
    )
    for _ in range(args.repeats):
        for name, root in modes:
            env = {**os.environ, "PYTHONPATH": str(root), "ACCORD_DURABILITY": "off"}
            env.pop("ACCORD_OTEL", None)
            mode = "on" if name == "on" else "off"
            out = subprocess.run(
                [sys.executable, "-c", OTEL, mode],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            runs[name].append(float(out.stdout.strip()))
    report = {f"{k}_us_per_activation": statistics.median(v) for k, v in runs.items() if v}
    report["on_over_off"] = statistics.median(
        a / b for a, b in zip(runs["on"], runs["off"], strict=True)
    )
    if runs["baseline_off"]:
        pairs = zip(runs["off"], runs["baseline_off"], strict=True)
        report["off_over_baseline"] = statistics.median(a / b for a, b in pairs)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--requests", type=int, default=3, help="requests per client")
    parser.add_argument("--drop", type=int, default=100, help="clients that disconnect mid-stream")
    parser.add_argument("--repeats", type=int, default=5, help="repeats of the tracing benchmark")
    parser.add_argument("--baseline", default=None, help="a checkout without the tracing hooks")
    parser.add_argument("--client-procs", type=int, default=4, help="client processes")
    parser.add_argument("--client", nargs=4, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-tracing", action="store_true")
    args = parser.parse_args()
    if args.client:  # one client process of the load phase
        url, n, requests, start_at = args.client
        results = asyncio.run(clients_run(url, int(n), int(requests), float(start_at)))
        print(json.dumps({"results": results, "end": time.time(), "cpu": time.process_time()}))
        return
    if args.quick:
        args.clients, args.requests, args.drop, args.repeats = 50, 2, 20, 2
    report: dict[str, Any] = {}
    if not args.skip_load:
        report["serve"] = serve_benchmark(args)
    if not args.skip_tracing:
        report["tracing"] = otel_benchmark(args)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
