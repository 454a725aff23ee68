"""Train the ensemble benchmark's models: tiny GPT-2s that learn three-digit addition.

Each model reads ``<s>aaa+bbb=`` (zero-padded operands) and writes ``cccc</s>`` (the zero-padded
sum, then EOS); the loss covers those five tokens only. The character tokenizer carries a chat
template that renders a conversation as BOS plus the last message, so ``accord.backend("hf:DIR")``
and any agent can ask a model ``"123+456="`` and get ``"0579"`` back.

Recipe (docs: offline-models.md section 7): GPT-2 config, AdamW (lr 2e-3, betas 0.9/0.98, weight
decay 0.01), batch 128, 100 warm-up steps, gradient clipping at 1.0, one torch thread. Training data
comes from a stream seeded by the model's seed and never contains a validation or test problem.
Trained folders are cached under ``~/.cache/accord-bench/ensembles/`` keyed by the recipe and the
seed, so a second run of the benchmark skips training. Caveat: results repeat exactly for a given
seed and thread count only.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from accord._tiny import char_tokenizer, param_count, save_tokenizer, tiny_gpt2

__all__ = [
    "ALPHABET",
    "CHAT_TEMPLATE",
    "Recipe",
    "Trained",
    "problems",
    "held_out",
    "prompt_of",
    "answer_of",
    "train_or_load",
]

ALPHABET = "0123456789+="
CHAT_TEMPLATE = "{{ bos_token }}{{ messages[-1]['content'] }}"
"""The conversation as BOS plus the last message: the exact format the models were trained on."""
CACHE = Path.home() / ".cache" / "accord-bench" / "ensembles"
TEST_SEED = 20_240
VALIDATION_SEED = 20_250


@dataclass(frozen=True)
class Recipe:
    """How one model is built and trained."""

    seed: int
    steps: int
    hidden: int = 128
    layers: int = 4
    heads: int = 4
    batch: int = 128
    lr: float = 2e-3
    warmup: int = 100

    def key(self) -> str:
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return f"s{self.seed}-h{self.hidden}-l{self.layers}-{hashlib.sha256(blob).hexdigest()[:10]}"


@dataclass(frozen=True)
class Trained:
    """A trained model on disk."""

    recipe: Recipe
    folder: Path
    params: int
    train_seconds: float
    """Wall time of training when it ran (read back from the cache on later runs)."""
    final_loss: float


def problems(seed: int, n: int) -> list[tuple[int, int]]:
    """``n`` distinct problems (a, b), 0 <= a, b < 1000, from a seeded stream."""
    rng = random.Random(seed)
    seen: set[tuple[int, int]] = set()
    out: list[tuple[int, int]] = []
    while len(out) < n:
        pair = (rng.randrange(1000), rng.randrange(1000))
        if pair not in seen:
            seen.add(pair)
            out.append(pair)
    return out


def held_out() -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The 500 test problems and 300 validation problems (disjoint, never trained on)."""
    test = problems(TEST_SEED, 500)
    validation = [p for p in problems(VALIDATION_SEED, 400) if p not in set(test)][:300]
    return test, validation


def prompt_of(a: int, b: int) -> str:
    return f"{a:03d}+{b:03d}="


def answer_of(a: int, b: int) -> str:
    return f"{a + b:04d}"


def _batch(
    rng: random.Random, size: int, banned: set[tuple[int, int]], vocab: dict[str, int]
) -> torch.Tensor:
    rows = []
    while len(rows) < size:
        a, b = rng.randrange(1000), rng.randrange(1000)
        if (a, b) in banned:
            continue
        text = prompt_of(a, b) + answer_of(a, b)
        rows.append([vocab["<s>"], *(vocab[c] for c in text), vocab["</s>"]])
    return torch.tensor(rows)


def _train(recipe: Recipe, tokenizer: Any, log: Any) -> tuple[Any, float]:
    vocab = tokenizer.get_vocab()
    test, validation = held_out()
    banned = set(test) | set(validation)
    model = tiny_gpt2(
        tokenizer,
        hidden=recipe.hidden,
        layers=recipe.layers,
        heads=recipe.heads,
        max_positions=64,
        seed=recipe.seed,
    )
    torch.manual_seed(recipe.seed)
    rng = random.Random(1_000 + recipe.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=recipe.lr, betas=(0.9, 0.98), weight_decay=0.01
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / recipe.warmup)
    )
    model.train()
    loss_value = float("nan")
    for step in range(recipe.steps):
        ids = _batch(rng, recipe.batch, banned, vocab)
        logits = model(input_ids=ids[:, :-1]).logits[:, -5:]
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), ids[:, -5:].reshape(-1)
        )
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        loss_value = float(loss)
        if log is not None and (step + 1) % 100 == 0:
            log(f"  seed {recipe.seed}: step {step + 1}/{recipe.steps}, loss {loss_value:.4f}")
    model.eval()
    return model, loss_value


def train_or_load(recipe: Recipe, *, cache: Path = CACHE, log: Any = print) -> Trained:
    """The trained model of ``recipe``: from the cache, or trained now and cached.

    Args:
        recipe: shape, seed and steps.
        cache: the cache folder.
        log: called with progress lines (None for silence).

    Returns:
        Where the model is, its size, and how long training took when it ran.
    """
    torch.set_num_threads(1)
    folder = cache / recipe.key()
    meta_path = folder / "accord_training.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        return Trained(recipe, folder, meta["params"], meta["train_seconds"], meta["final_loss"])
    tokenizer = char_tokenizer(ALPHABET, chat_template=CHAT_TEMPLATE)
    started = time.perf_counter()
    model, loss = _train(recipe, tokenizer, log)
    seconds = time.perf_counter() - started
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    save_tokenizer(tokenizer, folder)
    params = param_count(model)
    meta = {
        "recipe": asdict(recipe),
        "params": params,
        "train_seconds": seconds,
        "final_loss": loss,
    }
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return Trained(recipe, folder, params, seconds, loss)
