"""Cost of recording runs in the run store, per durability mode, and the store's size.

Run:  python benchmarks/store.py            (add --quick for a short run)
      python benchmarks/store.py --store postgresql://user:pw@host/db   (SQLite vs PostgreSQL)
      python benchmarks/store.py --store temp   (starts a throwaway local PostgreSQL server;
      temp-nofsync: one with fsync and synchronous_commit off)

Workloads (the chain and debate graphs of ``overhead.py``, events on, an instant backend):
- cost: µs per activation with durability "off", "async" (records written by the store's writer
  thread, which gathers them for 50 ms) and "sync" (each activation committed before its message
  is delivered), median of several repeats, modes interleaved so that load from other processes
  hits them alike; targets: async ≤ 1.5 × off, sync ≤ 1 ms;
- size: the store's bytes per activation after about 10, 100 and 1000 activations (runs of the
  workload recorded with "async"): the file's growth over an empty store, after a WAL checkpoint,
  and the JSON and text the rows hold. It must stay constant: a record holds its own activation.
  Then one debate run of 5, 20 and 50 rounds, whose prompts grow with the history.
- writes (``--store URL``, only this): activations recorded per second by an SQLite store and by
  the PostgreSQL store at URL, side by side (interleaved, median of repeats), for the chain
  workload with "sync" (one transaction per activation) and "async" (batched; the time includes
  ``store.flush()``, so every record is written when the clock stops).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from overhead import accord_chain, accord_debate, instant_backend  # noqa: E402

import accord  # noqa: E402
from accord.store import SQLiteStore, open_store  # noqa: E402

WORKLOADS = {"chain": (lambda: accord_chain(10), 10), "debate": (accord_debate, 21)}
MODES = ("off", "async", "sync")


async def _runs(graph: accord.Graph, runs: int, **options: Any) -> float:
    backend = instant_backend()
    events: list[Any] = []
    start = time.perf_counter()
    for _ in range(runs):
        await graph.run("task", backend, max_steps=100_000, on_event=events.append, **options)
        events.clear()
        backend.requests.clear()
    return time.perf_counter() - start


def bench_cost(workload: str, repeats: int, runs: int, folder: Path) -> dict[str, float]:
    build, per_run = WORKLOADS[workload]
    graph = build()
    stores = {mode: SQLiteStore(folder / f"cost-{workload}-{mode}.db") for mode in MODES}
    for mode in MODES:  # warm-up: imports, writer thread, prompt memo
        asyncio.run(_runs(graph, 3, store=stores[mode], durability=mode))
    samples: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(repeats):
        for mode in MODES:
            wall = asyncio.run(_runs(graph, runs, store=stores[mode], durability=mode))
            samples[mode].append(wall / (runs * per_run) * 1e6)
    figures = {f"{mode}_us": statistics.median(samples[mode]) for mode in MODES}
    figures["async_ratio"] = figures["async_us"] / figures["off_us"]
    return figures


def _row_bytes(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        total = 0
        for sql in (
            "SELECT sum(length(message) + length(calls)) FROM activations",
            "SELECT sum(length(data)) FROM events",
            "SELECT sum(length(text) + length(hash)) FROM blobs",
        ):
            total += conn.execute(sql).fetchone()[0] or 0
        return total


def _file_bytes(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def bench_size(workload: str, folder: Path) -> list[dict[str, float]]:
    build, per_run = WORKLOADS[workload]
    graph = build()
    path = folder / f"size-{workload}.db"
    store = SQLiteStore(path)
    empty = _file_bytes(path)
    rows = []
    done = 0
    for target in (10, 100, 1000):
        runs = max(1, round(target / per_run)) - done // per_run
        asyncio.run(_runs(graph, runs, store=store, durability="async"))
        store.flush()  # "async" returns before the writer has written
        done += runs * per_run
        rows.append(
            {
                "activations": done,
                "file_bytes_per_activation": (_file_bytes(path) - empty) / done,
                "row_bytes_per_activation": _row_bytes(path) / done,
            }
        )
    return rows


def bench_long_debate(folder: Path) -> list[dict[str, float]]:
    """One debate run of more and more rounds: bytes per activation as the history grows."""
    rows = []
    for rounds in (5, 20, 50):
        path = folder / f"long-{rounds}.db"
        store = SQLiteStore(path)
        empty = _file_bytes(path)
        graph = accord_debate(rounds=rounds)
        asyncio.run(_runs(graph, 1, store=store, durability="async"))
        store.flush()
        n = rounds * 4 + 1
        rows.append(
            {
                "rounds": rounds,
                "activations": n,
                "file_bytes_per_activation": (_file_bytes(path) - empty) / n,
                "row_bytes_per_activation": _row_bytes(path) / n,
            }
        )
    return rows


def bench_writes(url: str, repeats: int, runs: int, folder: Path) -> dict[str, float]:
    """Activations recorded per second: SQLite vs the PostgreSQL store at ``url``."""
    build, per_run = WORKLOADS["chain"]
    graph = build()
    stores = {"sqlite": SQLiteStore(folder / "writes.db"), "postgresql": open_store(url)}
    samples: dict[str, list[float]] = {}
    for mode in ("sync", "async"):
        for store in stores.values():  # warm-up
            asyncio.run(_runs(graph, 2, store=store, durability=mode))
            store.flush()
        for _ in range(repeats):
            for name, store in stores.items():
                start = time.perf_counter()
                asyncio.run(_runs(graph, runs, store=store, durability=mode))
                store.flush()
                wall = time.perf_counter() - start
                samples.setdefault(f"{name}_{mode}", []).append(runs * per_run / wall)
    for store in stores.values():
        store.close()
    figures = {f"{k}_per_s": statistics.median(v) for k, v in samples.items()}
    for mode in ("sync", "async"):
        figures[f"{mode}_ratio"] = (
            figures[f"postgresql_{mode}_per_s"] / figures[f"sqlite_{mode}_per_s"]
        )
    return figures


def _writes(url: str, repeats: int, runs: int) -> None:
    server = None
    if url in ("temp", "temp-nofsync"):
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "store"))
        from _pg_server import PostgresServer

        server = PostgresServer(durable=url == "temp")
        url = server.new_database()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            figures = bench_writes(url, repeats, runs, Path(tmp))
        print(f"chain: activations recorded per second, median of {repeats} x {runs} runs")
        for mode in ("sync", "async"):
            print(
                f"{mode:<5}  sqlite={figures[f'sqlite_{mode}_per_s']:,.0f}/s  "
                f"postgresql={figures[f'postgresql_{mode}_per_s']:,.0f}/s  "
                f"postgresql/sqlite={figures[f'{mode}_ratio']:.2f}"
            )
    finally:
        if server is not None:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and runs")
    parser.add_argument(
        "--store",
        default=None,
        help="postgresql://... URL (or 'temp' for a throwaway local server): compare writes/s",
    )
    args = parser.parse_args()
    repeats, runs = (3, 20) if args.quick else (7, 50)
    if args.store:
        _writes(args.store, repeats, runs)
        return
    print(f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}; median of {repeats}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for workload in WORKLOADS:
            n = runs if workload == "chain" else max(5, runs // 2)
            figures = bench_cost(workload, repeats, n, folder)
            print(f"{workload:<7} cost  " + "  ".join(f"{k}={v:,.2f}" for k, v in figures.items()))
        for workload in WORKLOADS:
            for row in bench_size(workload, folder):
                print(
                    f"{workload:<7} size  activations={row['activations']:,.0f}  "
                    f"file={row['file_bytes_per_activation']:,.0f} B/act  "
                    f"rows={row['row_bytes_per_activation']:,.0f} B/act"
                )
        for row in bench_long_debate(folder):
            print(
                f"debate  one run of {row['rounds']:.0f} rounds  activations={row['activations']:.0f}"
                f"  file={row['file_bytes_per_activation']:,.0f} B/act  "
                f"rows={row['row_bytes_per_activation']:,.0f} B/act"
            )


if __name__ == "__main__":
    main()
