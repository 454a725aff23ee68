"""Framework overhead of accord's runtime, side by side with LangGraph in the same process.

Run:  python benchmarks/overhead.py            (all workloads; add --quick for a short run)

Workloads (see benchmarks/README.md for the figures):
- chain: 10 agents in a line whose backend answers at once, 200 runs: µs per activation;
- fan-out: one node -> 8 parallel nodes sleeping 50 ms -> a join: wall time per run;
- debate: 3 debaters per round + a moderator step, 5 rounds, then an aggregator: µs per activation;
- scale: a 1000-node chain, once: µs per activation and build time;
- many runs: 1000 concurrent runs of the debate graph with 10 ms latency: wall time, peak RSS;
- many chains: 1000 concurrent 10-node chains (10 ms per model call): wall time and RSS growth per
  run, each side in a fresh interpreter;
- import: ``import accord`` in a fresh interpreter (and ``import langgraph.graph``);
- recorded: the chain with and without a run store (SQLite, durability "async" and "sync"),
  runs interleaved, ratio of medians; a store's figure includes writing every record (the time
  ends when ``store.flush()`` returns), and ``async_returned`` is the time until the last
  ``graph.run`` returned; LangGraph's chain without and with its SQLite checkpointer
  (``langgraph-checkpoint-sqlite``, when installed);
- 100 KB: the chain whose every reply is 100 KB of text, with and without a store: wall time per
  activation, and the event loop's time per activation spent on recording (the difference), plus
  LangGraph with a 100 KB state update per step, without and with its checkpointer.

accord's side uses real Agents (template rendering, typed Messages, usage accounting) with events
on (an event sink collects every event). LangGraph's side uses StateGraph with async nodes and
``ainvoke``; its nodes do the least work possible (append to a list), so the ratio is a lower bound
on accord's advantage. accord runs with ``durability="off"`` (no run store; see
``benchmarks/store.py`` for the cost of recording). Each figure is the median of several repeats.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import operator
import resource
import statistics
import subprocess
import sys
import time
from typing import Annotated, Any, TypedDict

import accord
from accord.testing import FunctionBackend


def median_of(repeats: int, fn: Any) -> float:
    return statistics.median(fn() for _ in range(repeats))


# ------------------------------------------------------------------------------ accord side


def instant_backend() -> FunctionBackend:
    return FunctionBackend(lambda request: "ok")


def sleeping_backend(seconds: float, prefix: str = "") -> FunctionBackend:
    """Answers after ``seconds`` (agents whose name starts with ``prefix``), others at once."""

    async def answer(request: accord.backends.Request) -> str:
        if request.agent.startswith(prefix):
            await asyncio.sleep(seconds)
        return "ok"

    return FunctionBackend(answer)


def accord_chain(n: int) -> accord.Graph:
    g = accord.Graph("chain")
    names = [f"n{i}" for i in range(n)]
    g.add(*(accord.Agent(name, memory=False) for name in names))
    for a, b in zip(names, names[1:], strict=False):
        g.connect(a, b)
    return g


def accord_fanout(width: int = 8) -> accord.Graph:
    g = accord.Graph("fanout")
    g.add(accord.Agent("start"), accord.Agent("join"))
    for i in range(width):
        g.add(accord.Agent(f"w{i}"))
        g.connect("start", f"w{i}")
        g.connect(f"w{i}", "join")
    return g


def accord_debate(rounds: int = 5, debaters: int = 3) -> accord.Graph:
    g = accord.Graph("debate")
    names = [f"d{i}" for i in range(debaters)]
    g.add(*(accord.Debater(n) for n in names))

    @accord.step
    def moderator(messages: list[accord.Message]) -> str:
        return "\n".join(m.text for m in messages)

    g.add(moderator, accord.Aggregator("aggregator"))
    for n in names:
        g.connect(n, "moderator")
        g.connect("moderator", n, max_rounds=rounds)
    g.connect("moderator", "aggregator", when=lambda m: m.round == rounds - 1)
    g.set_entry(*names)
    g.set_exit("aggregator")
    return g


async def accord_runs(graph: accord.Graph, backend: FunctionBackend, runs: int) -> float:
    events: list[Any] = []
    start = time.perf_counter()
    for _ in range(runs):
        await graph.run(
            "task", backend, max_steps=100_000, on_event=events.append, durability="off"
        )
        events.clear()
        backend.requests.clear()
    return time.perf_counter() - start


# --------------------------------------------------------------------------- langgraph side


class LGState(TypedDict):
    log: Annotated[list[str], operator.add]


class DState(TypedDict):
    log: Annotated[list[str], operator.add]
    round: int


def lg_chain(n: int) -> Any:
    from langgraph.graph import END, START, StateGraph

    g = StateGraph(LGState)

    def make(name: str) -> Any:
        async def node(state: LGState) -> dict[str, list[str]]:
            return {"log": [name]}

        return node

    names = [f"n{i}" for i in range(n)]
    for name in names:
        g.add_node(name, make(name))
    g.add_edge(START, names[0])
    for a, b in zip(names, names[1:], strict=False):
        g.add_edge(a, b)
    g.add_edge(names[-1], END)
    return g.compile()


def lg_fanout(width: int = 8, sleep: float = 0.05) -> Any:
    from langgraph.graph import END, START, StateGraph

    g = StateGraph(LGState)

    def make(name: str, delay: float) -> Any:
        async def node(state: LGState) -> dict[str, list[str]]:
            if delay:
                await asyncio.sleep(delay)
            return {"log": [name]}

        return node

    g.add_node("start", make("start", 0.0))
    g.add_node("join", make("join", 0.0))
    g.add_edge(START, "start")
    for i in range(width):
        g.add_node(f"w{i}", make(f"w{i}", sleep))
        g.add_edge("start", f"w{i}")
        g.add_edge(f"w{i}", "join")
    g.add_edge("join", END)
    return g.compile()


def lg_debate(rounds: int = 5, debaters: int = 3, sleep: float = 0.0) -> Any:
    from langgraph.graph import END, START, StateGraph

    g = StateGraph(DState)

    def make(name: str) -> Any:
        async def node(state: DState) -> dict[str, Any]:
            if sleep:
                await asyncio.sleep(sleep)
            return {"log": [name]}

        return node

    async def moderator(state: DState) -> dict[str, Any]:
        return {"round": state["round"] + 1}

    names = [f"d{i}" for i in range(debaters)]
    for n in names:
        g.add_node(n, make(n))
        g.add_edge(START, n)
        g.add_edge(n, "moderator")
    g.add_node("moderator", moderator)
    g.add_node("aggregator", make("aggregator"))

    def route(state: DState) -> Any:
        return ["aggregator"] if state["round"] >= rounds else names

    g.add_conditional_edges("moderator", route, [*names, "aggregator"])
    g.add_edge("aggregator", END)
    return g.compile()


async def lg_runs(app: Any, runs: int, state: dict[str, Any]) -> float:
    start = time.perf_counter()
    for _ in range(runs):
        await app.ainvoke(state, {"recursion_limit": 100_000})
    return time.perf_counter() - start


async def accord_runs_into(
    graph: accord.Graph, backend: FunctionBackend, runs: int, **options: Any
) -> float:
    """Like :func:`accord_runs`, with ``graph.run`` options (a store, a durability). The time
    includes writing every record: with a store, it ends once ``store.flush()`` returns."""
    events: list[Any] = []
    start = time.perf_counter()
    for _ in range(runs):
        await graph.run("task", backend, max_steps=100_000, on_event=events.append, **options)
        events.clear()
        backend.requests.clear()
    _returned.append(time.perf_counter() - start)
    store = options.get("store")
    if store is not None:
        await asyncio.to_thread(store.flush)
    return time.perf_counter() - start


_returned: list[float] = []
"""Seconds until the last ``graph.run`` of :func:`accord_runs_into` returned (before the flush)."""


def lg_chain_payload(n: int, payload: str) -> Any:
    """LangGraph's chain whose nodes each add ``payload`` (a long text) to the state."""
    from langgraph.graph import END, START, StateGraph

    g = StateGraph(LGState)

    def make() -> Any:
        async def node(state: LGState) -> dict[str, list[str]]:
            return {"log": [payload]}

        return node

    names = [f"n{i}" for i in range(n)]
    for name in names:
        g.add_node(name, make())
    g.add_edge(START, names[0])
    for a, b in zip(names, names[1:], strict=False):
        g.add_edge(a, b)
    g.add_edge(names[-1], END)
    return g


async def lg_runs_checkpointed(graph: Any, runs: int, path: str | None) -> float:
    """``runs`` runs of an uncompiled LangGraph graph, each a new thread in a SQLite
    checkpointer at ``path`` (None: no checkpointer)."""
    if path is None:
        app = graph.compile()
        start = time.perf_counter()
        for _ in range(runs):
            await app.ainvoke({"log": []}, {"recursion_limit": 100_000})
        return time.perf_counter() - start
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        app = graph.compile(checkpointer=saver)
        start = time.perf_counter()
        for i in range(runs):
            config = {"recursion_limit": 100_000, "configurable": {"thread_id": f"t{i}"}}
            await app.ainvoke({"log": []}, config)
        return time.perf_counter() - start


def _has_lg_sqlite() -> bool:
    try:
        import langgraph.checkpoint.sqlite.aio  # noqa: F401
    except ImportError:
        return False
    return True


def bench_recorded(repeats: int, runs: int) -> dict[str, float]:
    """The chain without and with a run store, interleaved; ratios of medians (same run)."""
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="accord-bench-"))
    g, b = accord_chain(10), instant_backend()
    modes = {
        "off": {"durability": "off"},
        "async": {"store": accord.open_store(folder / "async.db"), "durability": "async"},
        "sync": {"store": accord.open_store(folder / "sync.db"), "durability": "sync"},
    }
    lg_graph = lg_chain_payload(10, "n")
    lg_modes: dict[str, str | None] = {"lg_off": None}
    if _has_lg_sqlite():
        lg_modes["lg_sqlite"] = str(folder / "lg.db")
    for options in modes.values():
        asyncio.run(accord_runs_into(g, b, 5, **options))
    for path in lg_modes.values():
        asyncio.run(lg_runs_checkpointed(lg_graph, 5, path))
    samples: dict[str, list[float]] = {k: [] for k in [*modes, "async_returned", *lg_modes]}
    for _ in range(repeats):
        for name, options in modes.items():
            wall = asyncio.run(accord_runs_into(g, b, runs, **options))
            samples[name].append(wall / (runs * 10) * 1e6)
            if name == "async":
                samples["async_returned"].append(_returned[-1] / (runs * 10) * 1e6)
        for name, path in lg_modes.items():
            wall = asyncio.run(lg_runs_checkpointed(lg_graph, max(runs // 4, 5), path))
            samples[name].append(wall / (max(runs // 4, 5) * 10) * 1e6)
    for options in modes.values():
        store = options.get("store")
        if store is not None:
            store.close()
    med = {f"{k}_us": statistics.median(v) for k, v in samples.items()}
    med["async_ratio"] = med["async_us"] / med["off_us"]
    med["async_returned_ratio"] = med["async_returned_us"] / med["off_us"]
    med["sync_ratio"] = med["sync_us"] / med["off_us"]
    if "lg_sqlite_us" in med:
        med["lg_sqlite_ratio"] = med["lg_sqlite_us"] / med["lg_off_us"]
    return med


def bench_big_payload(repeats: int, runs: int, size: int = 100_000) -> dict[str, float]:
    """The chain with 100 KB replies, without and with a store: µs per activation, and the
    loop's time per activation spent on recording (the difference, loop thread CPU time)."""
    import tempfile
    from pathlib import Path

    folder = Path(tempfile.mkdtemp(prefix="accord-bench-"))
    text = ("lorem ipsum dolor sit amet " * (size // 27 + 1))[:size]
    g = accord_chain(10)
    b = FunctionBackend(lambda request: text)
    store = accord.open_store(folder / "big.db")
    modes = {"off": {"durability": "off"}, "async": {"store": store, "durability": "async"}}

    async def timed(options: dict[str, Any]) -> tuple[float, float]:
        cpu = time.thread_time()
        wall = await accord_runs_into(g, b, runs, **options)
        return wall, time.thread_time() - cpu

    for options in modes.values():
        asyncio.run(timed(options))
    walls: dict[str, list[float]] = {k: [] for k in modes}
    cpus: dict[str, list[float]] = {k: [] for k in modes}
    for _ in range(repeats):
        for name, options in modes.items():
            wall, cpu = asyncio.run(timed(options))
            walls[name].append(wall / (runs * 10) * 1e6)
            cpus[name].append(cpu / (runs * 10) * 1e6)
    store.close()
    out = {f"{k}_us": statistics.median(v) for k, v in walls.items()}
    out["loop_off_us"] = statistics.median(cpus["off"])
    out["loop_async_us"] = statistics.median(cpus["async"])
    out["loop_recording_us"] = out["loop_async_us"] - out["loop_off_us"]
    lg_graph = lg_chain_payload(10, text)
    lg_runs_n = max(runs // 2, 3)
    lg_paths: dict[str, str | None] = {"lg_off_us": None}
    if _has_lg_sqlite():
        lg_paths["lg_sqlite_us"] = str(folder / "lg-big.db")
    lg: dict[str, list[float]] = {k: [] for k in lg_paths}
    for _ in range(max(repeats // 2, 1)):
        for name, path in lg_paths.items():
            wall = asyncio.run(lg_runs_checkpointed(lg_graph, lg_runs_n, path))
            lg[name].append(wall / (lg_runs_n * 10) * 1e6)
    out.update({k: statistics.median(v) for k, v in lg.items()})
    return out


# ------------------------------------------------------------------------------ workloads


def bench_chain(repeats: int, runs: int) -> dict[str, float]:
    g, b = accord_chain(10), instant_backend()
    app = lg_chain(10)
    asyncio.run(accord_runs(g, b, 5))
    asyncio.run(lg_runs(app, 5, {"log": []}))
    acc = median_of(repeats, lambda: asyncio.run(accord_runs(g, b, runs))) / (runs * 10) * 1e6
    lg = (
        median_of(repeats, lambda: asyncio.run(lg_runs(app, runs, {"log": []}))) / (runs * 10) * 1e6
    )
    return {"accord_us": acc, "langgraph_us": lg, "ratio": lg / acc}


def bench_fanout(repeats: int) -> dict[str, float]:
    g, b = accord_fanout(), sleeping_backend(0.05, prefix="w")
    app = lg_fanout()
    asyncio.run(accord_runs(g, b, 1))
    acc = median_of(repeats, lambda: asyncio.run(accord_runs(g, b, 1))) * 1e3
    lg = median_of(repeats, lambda: asyncio.run(lg_runs(app, 1, {"log": []}))) * 1e3
    return {"accord_ms": acc, "langgraph_ms": lg}


def bench_debate(repeats: int, runs: int) -> dict[str, float]:
    g, b = accord_debate(), instant_backend()
    app = lg_debate()
    activations = 5 * 4 + 1  # 3 debaters + moderator per round, then the aggregator
    asyncio.run(accord_runs(g, b, 3))
    acc = (
        median_of(repeats, lambda: asyncio.run(accord_runs(g, b, runs)))
        / (runs * activations)
        * 1e6
    )
    lg = (
        median_of(repeats, lambda: asyncio.run(lg_runs(app, runs, {"log": [], "round": 0})))
        / (runs * activations)
        * 1e6
    )
    return {"accord_us": acc, "langgraph_us": lg, "ratio": lg / acc}


def bench_scale(repeats: int) -> dict[str, float]:
    start = time.perf_counter()
    g = accord_chain(1000)
    g.validate()
    build_ms = (time.perf_counter() - start) * 1e3
    b = instant_backend()
    asyncio.run(accord_runs(g, b, 1))  # warm-up, as for the 10-node chain
    acc = median_of(repeats, lambda: asyncio.run(accord_runs(g, b, 1))) / 1000 * 1e6
    start = time.perf_counter()
    app = lg_chain(1000)
    lg_build_ms = (time.perf_counter() - start) * 1e3
    asyncio.run(lg_runs(app, 1, {"log": []}))
    lg = median_of(repeats, lambda: asyncio.run(lg_runs(app, 1, {"log": []}))) / 1000 * 1e6
    return {
        "accord_us": acc,
        "accord_build_ms": build_ms,
        "langgraph_us": lg,
        "langgraph_build_ms": lg_build_ms,
    }


def bench_many(runs: int) -> dict[str, float]:
    g, b = accord_debate(), sleeping_backend(0.01)

    async def all_runs() -> float:
        start = time.perf_counter()
        await asyncio.gather(
            *(g.run("task", b, max_steps=1000, durability="off") for _ in range(runs))
        )
        return time.perf_counter() - start

    gc.collect()
    wall = asyncio.run(all_runs())
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"accord_s": wall, "peak_rss_mb": rss_mb}


def bench_many_langgraph(runs: int) -> dict[str, float]:
    app = lg_debate(sleep=0.01)

    async def all_runs() -> float:
        start = time.perf_counter()
        await asyncio.gather(
            *(app.ainvoke({"log": [], "round": 0}, {"recursion_limit": 1000}) for _ in range(runs))
        )
        return time.perf_counter() - start

    return {"langgraph_s": asyncio.run(all_runs())}


def bench_import(repeats: int) -> dict[str, float]:
    def once(module: str) -> float:
        code = (
            f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        return float(out.stdout.strip()) * 1e3

    return {
        "accord_ms": median_of(repeats, lambda: once("accord")),
        "langgraph_ms": median_of(repeats, lambda: once("langgraph.graph")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and runs")
    args = parser.parse_args()
    repeats, runs, many = (3, 50, 200) if args.quick else (7, 200, 1000)

    def show(name: str, figures: dict[str, float]) -> None:
        print(f"{name:<10} " + "  ".join(f"{k}={v:,.2f}" for k, v in figures.items()), flush=True)

    print(
        f"python {sys.version.split()[0]}, accord {accord.__version__}; median of {repeats} repeats"
    )
    show("chain", bench_chain(repeats, runs))
    show("fan-out", bench_fanout(repeats))
    show("debate", bench_debate(repeats, max(10, runs // 4)))
    show("scale", bench_scale(max(5, repeats // 2)))
    show("import", bench_import(repeats))
    show("recorded", bench_recorded(repeats, runs))
    show("100 KB", bench_big_payload(max(3, repeats // 2), max(5, runs // 20)))
    lg_many = subprocess.run(
        [sys.executable, __file__, "--many-langgraph", str(many)], capture_output=True, text=True
    )
    show(
        "many",
        {
            **bench_many(many),
            **{k: float(v) for k, v in (kv.split("=") for kv in lg_many.stdout.split())},
        },
    )
    show("chains", main_many_chains(many))


# ----------------------------------------------------------- many concurrent chains (memory)


def bench_many_chains(side: str, runs: int = 1000, length: int = 10) -> dict[str, float]:
    """``runs`` concurrent ``length``-node chains whose model answers after 10 ms, all alive at
    once: wall time and RSS growth per run (results kept until all are done), on one ``side``
    ("accord" or "langgraph"). Run each side in a fresh interpreter so their RSS do not mix."""
    import psutil

    proc = psutil.Process()
    if side == "accord":

        class Sleeping:  # keeps nothing per call (FunctionBackend logs every request)
            name = "bench:sleeping"
            capabilities = accord.backends.Capabilities()
            reply = accord.backends.Completion(
                choices=(accord.backends.Choice(text="ok"),), usage=accord.Usage(requests=1)
            )

            async def complete(self, request: accord.backends.Request) -> Any:
                await asyncio.sleep(0.01)
                return self.reply

        g, b = accord_chain(length), Sleeping()
        g.validate()

        def start_all(n: int) -> list[Any]:
            return [g.run("task", b, durability="off") for _ in range(n)]

    else:
        from langgraph.graph import END, START, StateGraph

        sg = StateGraph(LGState)

        def make(name: str) -> Any:
            async def node(state: LGState) -> dict[str, list[str]]:
                await asyncio.sleep(0.01)
                return {"log": [name]}

            return node

        names = [f"n{i}" for i in range(length)]
        for name in names:
            sg.add_node(name, make(name))
        sg.add_edge(START, names[0])
        for a, c in zip(names, names[1:], strict=False):
            sg.add_edge(a, c)
        sg.add_edge(names[-1], END)
        app = sg.compile()

        def start_all(n: int) -> list[Any]:
            return [app.ainvoke({"log": []}) for _ in range(n)]

    async def measure() -> tuple[float, float]:
        await asyncio.gather(*start_all(10))  # warm-up: first-use imports and caches
        gc.collect()
        before = proc.memory_info().rss
        start = time.perf_counter()
        results = await asyncio.gather(*start_all(runs))
        wall = time.perf_counter() - start
        gc.collect()
        grown = proc.memory_info().rss - before
        assert len(results) == runs
        return wall, grown

    wall, grown = asyncio.run(measure())
    return {f"{side}_s": wall, f"{side}_kib_per_run": grown / 1024 / runs}


def main_many_chains(runs: int = 1000) -> dict[str, float]:
    """:func:`bench_many_chains` for both sides, each in its own interpreter, side by side."""
    figures: dict[str, float] = {}
    for side in ("accord", "langgraph"):
        out = subprocess.run(
            [sys.executable, __file__, "--many-chains", side, str(runs)],
            capture_output=True,
            text=True,
            check=True,
        )
        figures.update({k: float(v) for k, v in (kv.split("=") for kv in out.stdout.split())})
    figures["rss_ratio"] = figures["accord_kib_per_run"] / figures["langgraph_kib_per_run"]
    return figures


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--many-chains":
        figures = bench_many_chains(sys.argv[2], int(sys.argv[3]))
        print(" ".join(f"{k}={v}" for k, v in figures.items()))
    elif len(sys.argv) == 3 and sys.argv[1] == "--many-langgraph":
        figures = bench_many_langgraph(int(sys.argv[2]))
        print(" ".join(f"{k}={v}" for k, v in figures.items()))
    else:
        main()
