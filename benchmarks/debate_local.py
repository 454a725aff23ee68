"""The debate pattern on one local model: batching on vs. off, and the runtime's share of the time.

Run:  python benchmarks/debate_local.py            (the ~46 M random Llama, BPE tokenizer)
      python benchmarks/debate_local.py --tokenizer byte   (one token per byte: long prompts)

3 debaters x 3 rounds (consensus stop off, so every run does all 9 generations of 32 new tokens)
on one ``HFBackend``: once with ``max_batch_size=8`` (the debaters of a round share each
``generate()``), once with ``max_batch_size=1`` (one ``generate()`` per debater). "Model time" is
the time spent inside the backend's ``generate()`` batches, measured around them; "runtime share"
is what the whole run took beyond that, relative to the model time. One torch thread; the median
of the repeats. Targets: batching >= 2.5x faster; runtime share < 2%.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import accord  # noqa: E402
from accord._tiny import (
    LLAMA_46M,
    bpe_tokenizer,
    byte_tokenizer,
    param_count,
    save_tiny_llama,
    tiny_llama,
)  # noqa: E402
from accord.backends.hf import HFBackend  # noqa: E402

NEW_TOKENS = 32
"""New tokens per answer (--new-tokens)."""


def timed_backend(folder: Path, batch: int) -> tuple[HFBackend, list[float]]:
    """An HFBackend whose generate batches are timed (seconds appended to the returned list)."""
    backend = HFBackend(
        str(folder),
        max_batch_size=batch,
        max_wait_ms=5.0,
        generate_kwargs={"min_new_tokens": NEW_TOKENS},
    )
    spent: list[float] = []
    inner = backend._run_batch

    def run_batch(items: Any) -> Any:
        start = time.perf_counter()
        try:
            return inner(items)
        finally:
            spent.append(time.perf_counter() - start)

    backend._run_batch = run_batch  # type: ignore[method-assign]
    return backend, spent


def graph() -> accord.Graph:
    debaters = [accord.Debater(f"d{i}", max_tokens=NEW_TOKENS, temperature=0) for i in range(3)]
    return accord.debate(debaters, rounds=3, stop_on_consensus=False)


async def one_run(backend: HFBackend, spent: list[float]) -> tuple[float, float, int]:
    spent.clear()
    batches = backend.stats.batches
    start = time.perf_counter()
    result = await graph().run("What is 17 * 24?", backend, durability="off")
    wall = time.perf_counter() - start
    assert result.usage.requests == 9, result.usage
    return wall, sum(spent), backend.stats.batches - batches


def main() -> None:
    global NEW_TOKENS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a ~0.1 M model instead of ~46 M")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=NEW_TOKENS, help="tokens per answer")
    parser.add_argument(
        "--tokenizer",
        choices=("bpe", "byte"),
        default="bpe",
        help="bpe: a 2,048-token BPE trained on local text (prompts ~4x shorter); byte: one token per byte",
    )
    args = parser.parse_args()
    import torch

    NEW_TOKENS = args.new_tokens
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        shape = {} if args.tiny else LLAMA_46M
        tokenizer = bpe_tokenizer() if args.tokenizer == "bpe" else byte_tokenizer()
        folder = save_tiny_llama(Path(tmp) / "model", tokenizer, **shape)
        size = param_count(tiny_llama(tokenizer, **shape))
        print(
            f"model: {size / 1e6:.1f} M parameters; 3 debaters x 3 rounds x {NEW_TOKENS} tokens; "
            f"{args.tokenizer} tokenizer; torch threads 1; median of {args.repeats}",
            flush=True,
        )
        rows = {}
        for label, batch in (("batched", 8), ("unbatched", 1)):
            backend, spent = timed_backend(folder, batch)
            asyncio.run(backend.load())
            asyncio.run(one_run(backend, spent))  # warm-up
            runs = [asyncio.run(one_run(backend, spent)) for _ in range(args.repeats)]
            wall = statistics.median(r[0] for r in runs)
            model = statistics.median(r[1] for r in runs)
            share = statistics.median((r[0] - r[1]) / r[1] for r in runs)
            rows[label] = wall
            print(
                f"{label:<10} wall {wall:7.2f} s  model {model:7.2f} s  generate calls {runs[-1][2]:2d}  "
                f"runtime share {share * 100:5.2f}%",
                flush=True,
            )
        print(f"batching speed-up: {rows['unbatched'] / rows['batched']:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
