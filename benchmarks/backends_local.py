"""Local batching: 8 agents calling one local model at once, through accord vs. by hand.

Run:  python benchmarks/backends_local.py     (options: --repeats N, --tokens N,
                                               --workload short|long|all, --json FILE)

The model is a random ~46 M-parameter Llama (``accord._tiny.LLAMA_46M``: hidden 512, 8 layers,
8 heads, MLP 3072, byte tokenizer with a ChatML template) built into a temporary folder and
loaded by folder. Each of 8 agents sends its own chat prompt and gets exactly ``--tokens`` new
tokens (greedy; ``min_new_tokens`` forces the length, since a random model may emit EOS at any
step). Three ways, each timed on the same prompts:

- sequential: 8 direct ``model.generate`` calls, one prompt each;
- accord: 8 concurrent ``HFBackend.complete`` calls (``asyncio.gather``), which the backend
  batches into left-padded ``generate`` calls (``max_batch_size=8``, ``max_wait_ms=5``);
- direct batch: one hand-made left-padded ``generate`` of all 8 prompts (the limit).

Two workloads: "short" (each agent's question alone, ~45 prompt tokens) and "long" (a shared
system message plus the question, ~225 prompt tokens; with one token per byte the prompt pass
is as costly sequential as batched, which shrinks every batching gain). Figures are generated
tokens per second, the median of ``--repeats`` rounds (default 5) after a warm-up round, with
the three ways interleaved in each round (a busy spell hits all three), on one torch thread. The
script also checks that accord's greedy texts equal the sequential ones (and exits non-zero if
not). Targets: accord >= 3x sequential and >= 0.8x the direct batch.
"""

from __future__ import annotations

import os

for _name, _value in {
    "OMP_NUM_THREADS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_name, _value)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

from accord._tiny import LLAMA_46M, param_count, save_tiny_llama  # noqa: E402
from accord.backends.base import ChatMessage, Request  # noqa: E402
from accord.backends.hf import HFBackend  # noqa: E402

AGENTS = 8
QUESTIONS = [
    "Tea or coffee?",
    "Coffee or tea?",
    "Is tea better?",
    "Is coffee better?",
    "Which tastes best?",
    "Which costs less?",
    "Which is older?",
    "Sum up the debate.",
]
SYSTEM = (
    "You are one of eight debaters in a structured debate about everyday drinks. Read the "
    "question, state your position in one sentence, then give your two strongest reasons."
)
WORKLOADS = {
    "short": "each agent's question as the only message (~45 prompt tokens)",
    "long": "a shared system message plus the question (~225 prompt tokens)",
}


def requests_for(workload: str, tokens: int) -> list[Request]:
    result = []
    for i, question in enumerate(QUESTIONS[:AGENTS]):
        user = ChatMessage(role="user", content=f"Debater {i + 1}: {question}")
        system = (ChatMessage(role="system", content=SYSTEM),) if workload == "long" else ()
        result.append(Request(messages=(*system, user), max_tokens=tokens, agent=f"debater{i}"))
    return result


def interleaved_medians(
    ways: dict[str, Callable[[], Any]], repeats: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """Median wall time of each way over ``repeats`` rounds after a warm-up round, and the last
    results. Each round runs every way once, so a busy spell of the machine hits all of them."""
    times: dict[str, list[float]] = {name: [] for name in ways}
    results: dict[str, Any] = {}
    for round_ in range(repeats + 1):
        for name, fn in ways.items():
            started = time.perf_counter()
            results[name] = fn()
            if round_:
                times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}, results


def measure(backend: HFBackend, workload: str, tokens: int, repeats: int) -> dict[str, Any]:
    """Tokens per second of the three ways for one workload."""
    model, tokenizer = backend.hf_model, backend.tokenizer
    requests = requests_for(workload, tokens)
    prompts = [backend.encode(backend.chat_prompt(r)) for r in requests]
    settings: dict[str, Any] = {
        "max_new_tokens": tokens,
        "min_new_tokens": tokens,
        "do_sample": False,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": list(backend.eos_token_ids),
    }

    def sequential() -> list[list[int]]:
        outs = []
        with torch.inference_mode():
            for ids in prompts:
                out = model.generate(
                    input_ids=torch.tensor([ids]),
                    attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                    **settings,
                )
                outs.append(out[0, len(ids) :].tolist())
        return outs

    def direct_batch() -> list[list[int]]:
        width = max(len(ids) for ids in prompts)
        input_ids = torch.full((len(prompts), width), tokenizer.pad_token_id)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, ids in enumerate(prompts):
            input_ids[i, width - len(ids) :] = torch.tensor(ids)
            mask[i, width - len(ids) :] = 1
        with torch.inference_mode():
            out = model.generate(input_ids=input_ids, attention_mask=mask, **settings)
        return [row.tolist() for row in out[:, width:]]

    async def gather() -> list[Any]:
        return list(await asyncio.gather(*(backend.complete(r) for r in requests)))

    def through_accord() -> list[Any]:
        return asyncio.run(gather())

    batches_before = backend.stats.batches
    ways = {"sequential": sequential, "accord": through_accord, "direct batch": direct_batch}
    seconds, results = interleaved_medians(ways, repeats)
    rate = {name: AGENTS * tokens / value for name, value in seconds.items()}
    completions = results["accord"]
    assert all(c.usage.completion_tokens == tokens for c in completions), "lengths differ"
    expected = [backend.decode(t) for t in results["sequential"]]
    return {
        "workload": WORKLOADS[workload],
        "prompt_tokens": [len(p) for p in prompts],
        "tokens_per_s": {name: round(value, 1) for name, value in rate.items()},
        "accord_vs_sequential": round(rate["accord"] / rate["sequential"], 2),
        "accord_vs_direct_batch": round(rate["accord"] / rate["direct batch"], 2),
        "direct_batch_vs_sequential": round(rate["direct batch"] / rate["sequential"], 2),
        "generate_calls_per_round": (backend.stats.batches - batches_before) / (repeats + 1),
        "greedy_texts_equal_sequential": [c.text for c in completions] == expected,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--workload", choices=[*WORKLOADS, "all"], default="all")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    workloads = list(WORKLOADS) if args.workload == "all" else [args.workload]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_tiny_llama(Path(tmp) / "llama46m", **LLAMA_46M)
        backend = HFBackend(
            str(folder),
            device="cpu",
            max_batch_size=AGENTS,
            max_wait_ms=5,
            generate_kwargs={"min_new_tokens": args.tokens},
        )
        asyncio.run(backend.load())
        figures: dict[str, Any] = {
            "model_parameters": param_count(backend.hf_model),
            "agents": AGENTS,
            "new_tokens_each": args.tokens,
            "repeats": args.repeats,
            "torch_threads": torch.get_num_threads(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
            "workloads": {w: measure(backend, w, args.tokens, args.repeats) for w in workloads},
        }
        backend.close()
    figures["load_average_1min"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    print(
        f"Local batching: {AGENTS} agents x {args.tokens} new tokens, "
        f"{figures['model_parameters'] / 1e6:.1f} M-parameter Llama, 1 torch thread, "
        f"median of {args.repeats} interleaved rounds after a warm-up"
    )
    print(f"{'workload':<9}{'way':<14}{'tokens/s':>10}{'vs sequential':>15}{'vs direct':>11}")
    for name, got in figures["workloads"].items():
        rates = got["tokens_per_s"]
        for way, value in rates.items():
            print(
                f"{name:<9}{way:<14}{value:>10.1f}{value / rates['sequential']:>14.2f}x"
                f"{value / rates['direct batch']:>10.2f}x"
            )
        print(
            f"{'':<9}prompt tokens {min(got['prompt_tokens'])}-{max(got['prompt_tokens'])}; "
            f"generate calls per round {got['generate_calls_per_round']:g}; "
            f"greedy texts equal sequential: {got['greedy_texts_equal_sequential']}"
        )
    print(
        "targets: accord >= 3x sequential, >= 0.8x direct batch; machine load average "
        f"{figures['load_average_1min'][0]} at start, {figures['load_average_1min'][1]} at end"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if not all(w["greedy_texts_equal_sequential"] for w in figures["workloads"].values()):
        sys.exit("accord's batched greedy output differs from sequential generate")


if __name__ == "__main__":
    main()
