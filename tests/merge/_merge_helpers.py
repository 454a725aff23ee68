"""Helpers for merge tests: tiny seeded models, perturbed forks, saving and loading.

Every model is a 3-layer Llama (hidden 32, untied LM head, byte tokenizer), ~50 K parameters,
built from a seed; forks add seeded noise of different sizes to every tensor so their task
vectors differ. Each can be saved unsharded or sharded (small shards with an index).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from accord._tiny import byte_tokenizer, save_tokenizer, tiny_llama

LAYERS = 3


def perturbed(model: Any, seed: int, scale: float) -> Any:
    """``model`` with seeded Gaussian noise of std ``scale`` added to every parameter."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn(param.shape, generator=generator) * scale)
    return model


def save(model: Any, tokenizer: Any, folder: Path, *, sharded: bool = False) -> Path:
    """Save model and tokenizer; ``sharded`` splits weights into ~20 KB shards with an index."""
    model.save_pretrained(folder, max_shard_size="20KB" if sharded else "1GB")
    save_tokenizer(tokenizer, folder)
    return folder


def load_state(folder: Path) -> dict[str, Any]:
    """Every tensor of a saved folder (single file or shards), by name."""
    from safetensors.torch import load_file

    state: dict[str, Any] = {}
    for path in sorted(folder.glob("*.safetensors")):
        state.update(load_file(path))
    return state


def llama(seed: int = 0, **shape: Any) -> Any:
    return tiny_llama(
        byte_tokenizer(),
        hidden=32,
        layers=LAYERS,
        heads=4,
        tie_embeddings=False,
        seed=seed,
        **shape,
    )
