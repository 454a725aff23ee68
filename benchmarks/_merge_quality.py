"""The effect of merging on quality: tiny GPT-2 models trained on three-digit addition.

A trunk (GPT-2 config: 4 layers, width 128, 4 heads, context 64, ~0.8 M parameters; character
tokenizer) is trained on ``aaa+bbb=cccc`` (zero-padded, loss on the answer only) until it has
learned the task, then forked: each fork trains further on its own seeded data stream. The forks
are merged with accord (linear soup, task arithmetic, TIES) and every model is scored by greedy
exact-match accuracy on a held-out set drawn from a separate seed. One torch thread; a run
repeats exactly for a given seed and thread count.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import torch

from accord._tiny import char_tokenizer, save_tokenizer, tiny_gpt2

TRUNK_STEPS = 500
FORK_STEPS = 250
FORKS = 3
EVAL_PROBLEMS = 2000


def _problems(rng: random.Random, n: int) -> list[tuple[int, int]]:
    return [(rng.randrange(1000), rng.randrange(1000)) for _ in range(n)]


def _encode(pairs: list[tuple[int, int]], vocab: dict[str, int], bos: int) -> torch.Tensor:
    rows = [[bos] + [vocab[c] for c in f"{a:03d}+{b:03d}={a + b:04d}"] for a, b in pairs]
    return torch.tensor(rows)


def train(
    model: Any, steps: int, seed: int, vocab: dict[str, int], bos: int, warmup: int = 100
) -> Any:
    """Train on a seeded stream of problems; the loss covers the 4 answer tokens only."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.98), weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup))
    model.train()
    for _ in range(steps):
        ids = _encode(_problems(rng, 128), vocab, bos)
        logits = model(ids[:, :-1]).logits[:, -4:]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), ids[:, -4:].reshape(-1)
        )
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    model.eval()
    return model


@torch.inference_mode()
def accuracy(model: Any, vocab: dict[str, int], bos: int) -> float:
    """Greedy exact-match accuracy on the held-out problems (seed 12345)."""
    ids = _encode(_problems(random.Random(12345), EVAL_PROBLEMS), vocab, bos)
    correct = 0
    for chunk in ids.split(500):
        seq = chunk[:, :9]
        for _ in range(4):
            next_id = model(seq).logits[:, -1].argmax(-1, keepdim=True)
            seq = torch.cat([seq, next_id], dim=1)
        correct += int((seq[:, 9:] == chunk[:, 9:]).all(dim=1).sum())
    return correct / len(ids)


def run_quality(work: Path) -> str:
    """Train trunk and forks (cached under ``work``), merge, score; a markdown table."""
    from transformers import AutoModelForCausalLM

    from accord.merge import merge

    torch.set_num_threads(1)
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = char_tokenizer("0123456789+=")
    vocab, bos = tokenizer.get_vocab(), tokenizer.bos_token_id
    started = time.perf_counter()
    trunk_dir = work / "trunk"
    if not (trunk_dir / "config.json").is_file():
        trunk = train(tiny_gpt2(tokenizer, seed=0), TRUNK_STEPS, 0, vocab, bos)
        trunk.save_pretrained(trunk_dir)
        save_tokenizer(tokenizer, trunk_dir)
    forks = []
    for i in range(1, FORKS + 1):
        folder = work / f"fork{i}"
        if not (folder / "config.json").is_file():
            model = AutoModelForCausalLM.from_pretrained(trunk_dir)
            train(model, FORK_STEPS, 100 + i, vocab, bos, warmup=1).save_pretrained(folder)
            save_tokenizer(tokenizer, folder)
        forks.append(folder)
    trained = time.perf_counter() - started
    fork_entries = [{"model": str(f), "parameters": {"weight": 1.0}} for f in forks]
    configs = {
        "linear (uniform soup)": {"merge_method": "linear", "models": fork_entries},
        "task_arithmetic (weights 1/3, lambda 1)": {
            "merge_method": "task_arithmetic",
            "base_model": str(trunk_dir),
            "models": [{"model": str(f), "parameters": {"weight": 1 / FORKS}} for f in forks],
        },
        "task_arithmetic (weights 1, lambda 1)": {
            "merge_method": "task_arithmetic",
            "base_model": str(trunk_dir),
            "models": fork_entries,
        },
        "ties (density 0.5, lambda 1)": {
            "merge_method": "ties",
            "base_model": str(trunk_dir),
            "models": [
                {"model": str(f), "parameters": {"weight": 1.0, "density": 0.5}} for f in forks
            ],
        },
    }
    rows = [
        (
            "trunk (fork point)",
            accuracy(AutoModelForCausalLM.from_pretrained(trunk_dir), vocab, bos),
        )
    ]
    rows += [
        (f"fork {i}", accuracy(AutoModelForCausalLM.from_pretrained(f), vocab, bos))
        for i, f in enumerate(forks, 1)
    ]
    for label, config in configs.items():
        out = work / f"merged-{len(rows)}"
        merge(config, out, overwrite=True)
        rows.append((label, accuracy(AutoModelForCausalLM.from_pretrained(out), vocab, bos)))
    lines = [
        f"trunk {TRUNK_STEPS} steps, {FORKS} forks x {FORK_STEPS} steps; training {trained:.0f} s "
        f"(one thread); {EVAL_PROBLEMS} held-out problems",
        "",
        "| model | exact-match accuracy |",
        "|---|---|",
    ]
    lines += [f"| {label} | {acc * 100:.1f}% |" for label, acc in rows]
    return "\n".join(lines)
