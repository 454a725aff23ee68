"""Cooperative decoding on tiny models built and trained here: speculative, contrastive, proxy.

Run:  python benchmarks/decoding.py                 (trains on first run: minutes on one core)
      python benchmarks/decoding.py --only speculative --tokens 64

Speculative decoding (random Llamas with the byte tokenizer, no chat template, one torch thread):
the target has 8 layers of width 256 (~8 M parameters); the *agreeing* draft is the target's
embeddings and first layer (offline-models.md section 6: the target's other layers have their
output projections ``o_proj``/``down_proj`` scaled by 0.05, so the draft often predicts the
target's argmax), the *poor* draft an unrelated 1-layer random model. Eight prompts, each asked
alone (greedy, ``--tokens`` new tokens): the target alone through ``HFBackend`` (one
``generate()`` per request, KV cache) against ``Speculative`` with fixed k and with adaptive k.
Reported: tokens/s (median of ``--repeats`` interleaved runs), acceptance rate, tokens per
verification, whether every text equals the target's alone, and the runtime's share of the wall
time (everything outside the models' forward passes, measured by timing ``model.forward``).

Contrastive decoding and proxy-tuning use the ensembles benchmark's addition models
(``_ensembles_train.py``: ``<s>aaa+bbb=`` -> ``cccc</s>``), scored on the first ``--problems``
held-out test problems by exact match, greedy:

- contrastive: expert = GPT-2 (4 layers, width 128) seed 7 after 700 steps; amateur = the same run
  after 300 steps (an under-trained checkpoint of the same model); alpha = 0.1, beta None and 0.5;
- proxy-tuning: base = GPT-2 (4 layers, width 192) seed 8 trained only 250 steps (barely knows
  the task); expert = GPT-2 (2 layers, width 64) seed 9 after 800 steps; anti-expert = that model
  at step 0 (its untrained initialisation); alpha = 1.

Seeded batching: ten seeded samples (temperature 0.7, seeds 0..9) for each of 20 problems through
one ``HFBackend``, all at once, with and without seeded batching (``max_batch_size=1`` reproduces
the old rule that a seeded request runs alone).

One model through a token ensemble: 100 problems at once through ``HFBackend``, through
``TokenEnsemble([model])`` (batched now) and through the gated one-sequence loop (``gate=1.0``,
one loop per request, as every request ran before).

Figures go to stdout (markdown) and ``~/.cache/accord-bench/decoding/results.json``.
"""

from __future__ import annotations

import os

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
}.items():
    os.environ.setdefault(_name, _value)

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ensembles_train import Recipe, answer_of, held_out, prompt_of, train_or_load  # noqa: E402

from accord._tiny import byte_tokenizer, save_tokenizer, tiny_llama  # noqa: E402
from accord.backends.base import ChatMessage, Request  # noqa: E402
from accord.backends.hf import HFBackend  # noqa: E402
from accord.decoding import Contrastive, ProxyTuned, Speculative  # noqa: E402

OUT = Path.home() / ".cache" / "accord-bench" / "decoding"
SPEC_PROMPTS = [
    "The quick brown fox",
    "def main():",
    "Once upon a time",
    "SELECT * FROM",
    "import numpy as np",
    "Dear colleagues,",
    "1, 2, 3, 4,",
    "<html><body>",
]
EXPERT, AMATEUR = Recipe(seed=7, steps=700), Recipe(seed=7, steps=300)
BASE = Recipe(seed=8, steps=250, hidden=192, layers=4)
SMALL_EXPERT = Recipe(seed=9, steps=800, hidden=64, layers=2)
SMALL_ANTI = Recipe(seed=9, steps=0, hidden=64, layers=2)


def ask(text: str, **options: Any) -> Request:
    return Request(messages=(ChatMessage(role="user", content=text),), **options)


class ForwardClock:
    """Adds up the time spent inside ``model.forward`` of the models it wraps."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, model: Any) -> None:
        inner = model.forward

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        model.forward = timed


def build_speculative_models(root: Path) -> dict[str, Path]:
    """Target, agreeing draft (its embeddings + first layer) and poor draft, saved as folders."""
    tokenizer = byte_tokenizer(chat_template=None)
    shape = {"hidden": 256, "heads": 8, "intermediate": 1024, "max_positions": 4096}
    target = tiny_llama(tokenizer, layers=8, seed=0, **shape)
    with torch.no_grad():
        for layer in target.model.layers[1:]:
            layer.self_attn.o_proj.weight.mul_(0.05)
            layer.mlp.down_proj.weight.mul_(0.05)
    target.generation_config.eos_token_id = None  # random models: time a fixed length
    draft = tiny_llama(tokenizer, layers=1, seed=0, **shape)
    state = {k: v for k, v in target.state_dict().items() if not k.startswith("model.layers.")}
    state.update({k: v for k, v in target.state_dict().items() if k.startswith("model.layers.0.")})
    draft.load_state_dict(state, strict=True)
    poor = tiny_llama(tokenizer, layers=1, seed=1, **shape)
    folders = {}
    for name, model in (("target", target), ("agreeing", draft), ("poor", poor)):
        folder = root / name
        model.generation_config.eos_token_id = None
        model.save_pretrained(folder)
        save_tokenizer(tokenizer, folder)
        folders[name] = folder
    return folders


async def _timed(backend: Any, max_tokens: int) -> tuple[float, list[str], int]:
    started = time.perf_counter()
    texts, tokens = [], 0
    for prompt in SPEC_PROMPTS:  # one request at a time: speculative decoding's use case
        completion = await backend.complete(ask(prompt, max_tokens=max_tokens))
        texts.append(completion.text)
        tokens += completion.usage.completion_tokens
    return time.perf_counter() - started, texts, tokens


async def speculative(max_tokens: int, repeats: int) -> dict[str, Any]:
    folders = build_speculative_models(OUT / "speculative-models")
    target = HFBackend(str(folders["target"]))
    agreeing, poor = HFBackend(str(folders["agreeing"])), HFBackend(str(folders["poor"]))
    for b in (target, agreeing, poor):
        await b.load()
    clocks = {name: ForwardClock() for name in ("target", "agreeing", "poor")}
    clocks["target"].wrap(target.hf_model)
    clocks["agreeing"].wrap(agreeing.hf_model)
    clocks["poor"].wrap(poor.hf_model)
    setups: dict[str, Any] = {
        "target alone (HFBackend)": target,
        "agreeing draft, k=8": Speculative(target, agreeing, k=8),
        "agreeing draft, adaptive": Speculative(target, agreeing, k=4, adaptive=True),
        "poor draft, k=4": Speculative(target, poor, k=4),
        "poor draft, adaptive": Speculative(target, poor, k=4, adaptive=True),
    }
    await _timed(target, 8)  # warm-up
    runs: dict[str, list[float]] = {name: [] for name in setups}
    shares: dict[str, list[float]] = {name: [] for name in setups}
    texts: dict[str, list[str]] = {}
    tokens: dict[str, int] = {}
    for _ in range(repeats):
        for name, backend in setups.items():
            before = sum(c.seconds for c in clocks.values())
            seconds, texts[name], tokens[name] = await _timed(backend, max_tokens)
            inside = sum(c.seconds for c in clocks.values()) - before
            runs[name].append(tokens[name] / seconds)
            shares[name].append(max(0.0, 1 - inside / seconds))
    base = statistics.median(runs["target alone (HFBackend)"])
    rows = []
    for name, backend in setups.items():
        stats = getattr(backend, "stats", None)
        tps = statistics.median(runs[name])
        rows.append(
            {
                "setup": name,
                "tokens_per_s": round(tps, 1),
                "speedup": round(tps / base, 2),
                "acceptance": round(stats.acceptance_rate, 3)
                if hasattr(stats, "drafted")
                else None,
                "tokens_per_verification": round(stats.mean_accepted, 2)
                if hasattr(stats, "drafted")
                else None,
                "identical_to_target": texts[name] == texts["target alone (HFBackend)"],
                "runtime_share": round(statistics.median(shares[name]), 3),
                "tokens": tokens[name],
            }
        )
    return {"max_tokens": max_tokens, "repeats": repeats, "rows": rows}


async def _accuracy(backend: Any, problems: list[tuple[int, int]]) -> tuple[float, float]:
    started = time.perf_counter()
    completions = await asyncio.gather(
        *(backend.complete(ask(prompt_of(a, b), max_tokens=5)) for a, b in problems)
    )
    right = sum(c.text == answer_of(a, b) for c, (a, b) in zip(completions, problems, strict=True))
    return right / len(problems), time.perf_counter() - started


async def knowledge(problems_n: int) -> dict[str, Any]:
    test, _ = held_out()
    problems = test[:problems_n]
    folders = {
        r: str(train_or_load(r).folder) for r in (EXPERT, AMATEUR, BASE, SMALL_EXPERT, SMALL_ANTI)
    }

    def hf(recipe: Recipe) -> HFBackend:
        return HFBackend(folders[recipe], max_batch_size=32)

    expert, amateur = hf(EXPERT), hf(AMATEUR)
    base, small, anti = hf(BASE), hf(SMALL_EXPERT), hf(SMALL_ANTI)
    setups: dict[str, Any] = {
        "expert alone (seed 7, 700 steps)": expert,
        "amateur alone (seed 7, 300 steps)": amateur,
        "contrastive, alpha 0.1": Contrastive(expert, amateur, alpha=0.1, max_batch_size=32),
        "contrastive, alpha 0.1, beta 0.5": Contrastive(
            expert, amateur, alpha=0.1, beta=0.5, max_batch_size=32
        ),
        "base alone (h192, 250 steps)": base,
        "small expert alone (h64, 800 steps)": small,
        "small anti-expert alone (step 0)": anti,
        "proxy-tuned base, alpha 1": ProxyTuned(base, small, anti, max_batch_size=32),
    }
    rows = []
    for name, backend in setups.items():
        accuracy, seconds = await _accuracy(backend, problems)
        rows.append({"setup": name, "accuracy": round(accuracy, 3), "seconds": round(seconds, 2)})
    return {"problems": len(problems), "rows": rows}


async def seeded(problems_n: int = 20, k: int = 10) -> dict[str, Any]:
    test, _ = held_out()
    folder = str(train_or_load(EXPERT).folder)
    out = {}
    for label, size in (("alone (old rule)", 1), ("batched, one generator per row", 16)):
        backend = HFBackend(folder, max_batch_size=size)
        await backend.load()
        started = time.perf_counter()
        answers = await asyncio.gather(
            *(
                backend.complete(ask(prompt_of(a, b), max_tokens=5, temperature=0.7, seed=s))
                for a, b in test[:problems_n]
                for s in range(k)
            )
        )
        out[label] = {
            "seconds": round(time.perf_counter() - started, 2),
            "generate_calls": backend.stats.batches,
            "texts": [c.text for c in answers],
        }
    texts = [v.pop("texts") for v in out.values()]
    return {"requests": problems_n * k, "same_texts": texts[0] == texts[1], **out}


async def token_ensemble(problems_n: int = 100) -> dict[str, Any]:
    """One model through ``HFBackend`` and through ``TokenEnsemble`` (batched and per-request)."""
    from accord.ensemble import TokenEnsemble

    test, _ = held_out()
    problems = test[:problems_n]
    folder = str(train_or_load(EXPERT).folder)
    model = HFBackend(folder, max_batch_size=32)
    await model.load()
    setups: dict[str, Any] = {
        "HFBackend": model,
        "TokenEnsemble([model]), batched": TokenEnsemble([model]),
        "TokenEnsemble([model], gate=1.0), one loop per request": TokenEnsemble([model], gate=1.0),
    }
    rows = []
    for name, backend in setups.items():
        accuracy, seconds = await _accuracy(backend, problems)
        rows.append({"setup": name, "accuracy": round(accuracy, 3), "seconds": round(seconds, 2)})
    return {"problems": len(problems), "rows": rows}


def report(results: dict[str, Any]) -> str:
    lines = []
    if "speculative" in results:
        s = results["speculative"]
        lines += [
            f"Speculative decoding ({len(SPEC_PROMPTS)} prompts x {s['max_tokens']} tokens, "
            f"median of {s['repeats']})",
            "",
            "| setup | tokens/s | vs target | acceptance | tokens/verification "
            "| identical | runtime share |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in s["rows"]:
            lines.append(
                f"| {r['setup']} | {r['tokens_per_s']} | {r['speedup']}x | "
                f"{r['acceptance'] if r['acceptance'] is not None else '-'} | "
                f"{r['tokens_per_verification'] or '-'} | {r['identical_to_target']} | "
                f"{r['runtime_share']:.0%} |"
            )
        lines.append("")
    if "knowledge" in results:
        k = results["knowledge"]
        lines += [
            f"Contrastive decoding and proxy-tuning ({k['problems']} held-out problems, greedy)",
            "",
            "| setup | accuracy | seconds |",
            "|---|---|---|",
        ]
        lines += [f"| {r['setup']} | {r['accuracy']:.1%} | {r['seconds']} |" for r in k["rows"]]
        lines.append("")
    if "token" in results:
        t = results["token"]
        lines += [
            f"One model through a token ensemble ({t['problems']} problems at once)",
            "",
            "| setup | accuracy | seconds |",
            "|---|---|---|",
        ]
        lines += [f"| {r['setup']} | {r['accuracy']:.1%} | {r['seconds']} |" for r in t["rows"]]
        lines.append("")
    if "seeded" in results:
        d = results["seeded"]
        lines += [
            f"Seeded sampling ({d['requests']} seeded requests at once; same texts: "
            f"{d['same_texts']})",
            "",
            "| rule | seconds | generate() calls |",
            "|---|---|---|",
        ]
        lines += [
            f"| {name} | {v['seconds']} | {v['generate_calls']} |"
            for name, v in d.items()
            if isinstance(v, dict)
        ]
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("speculative", "knowledge", "seeded", "token"))
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--problems", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    if args.only in (None, "speculative"):
        results["speculative"] = await speculative(args.tokens, args.repeats)
    if args.only in (None, "knowledge"):
        results["knowledge"] = await knowledge(args.problems)
    if args.only in (None, "seeded"):
        results["seeded"] = await seeded()
    if args.only in (None, "token"):
        results["token"] = await token_ensemble()
    name = "results.json" if args.only is None else f"results-{args.only}.json"
    (OUT / name).write_text(json.dumps(results, indent=2) + "\n")
    print(report(results))


if __name__ == "__main__":
    asyncio.run(main())
