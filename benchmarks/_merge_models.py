"""Random Llama-style checkpoints for the merge benchmark, written tensor by tensor.

:func:`write_family` saves a base model and perturbed forks in bf16, sharded with an index, plus
config, generation config and a byte-level tokenizer, without ever building the model in memory:
tensor names and shapes come from a model on the ``meta`` device, each tensor is drawn from a
seed derived from its name, and a fork is ``base + noise`` rounded to bf16. The default shape
(vocabulary 32,000, hidden 1,536, MLP 4,096, 16 layers, 12 heads, 4 key/value heads, untied
LM head) has ~0.50 B parameters, ~1.0 GB per model in bf16.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from accord._tiny import byte_tokenizer, save_tokenizer

SHAPES: dict[str, dict[str, int]] = {
    "500m": {"vocab": 32000, "hidden": 1536, "mlp": 4096, "layers": 16, "heads": 12, "kv": 4},
    "small": {"vocab": 4096, "hidden": 256, "mlp": 768, "layers": 4, "heads": 4, "kv": 2},
}
"""Model shapes the benchmark can build: the headline one and a quick one for smoke runs."""


def _config(shape: dict[str, int]) -> Any:
    from transformers import LlamaConfig

    config = LlamaConfig(
        vocab_size=shape["vocab"],
        hidden_size=shape["hidden"],
        intermediate_size=shape["mlp"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["heads"],
        num_key_value_heads=shape["kv"],
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        dtype="bfloat16",
    )
    config.architectures = ["LlamaForCausalLM"]
    return config


def _seed(*parts: object) -> int:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def _base_tensor(name: str, shape: tuple[int, ...]) -> torch.Tensor:
    if name.endswith("norm.weight"):
        return torch.ones(shape)
    generator = torch.Generator().manual_seed(_seed("base", name))
    return torch.randn(shape, generator=generator) * 0.02


def write_family(
    root: Path, shape_name: str, forks: int = 2, shard_bytes: int = 300_000_000
) -> dict[str, Path]:
    """Write ``base`` and ``fork1``..``forkN`` under ``root`` (skipped when already there).

    Returns:
        Folder of each model by name.
    """
    from transformers import LlamaForCausalLM

    shape = SHAPES[shape_name]
    config = _config(shape)
    with torch.device("meta"):
        skeleton = LlamaForCausalLM(config)
    tensors = [(n, tuple(p.shape)) for n, p in skeleton.state_dict().items()]
    folders = {
        "base": root / "base",
        **{f"fork{i}": root / f"fork{i}" for i in range(1, forks + 1)},
    }
    for model, folder in folders.items():
        if (folder / "config.json").is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        _write_weights(folder, model, tensors, shard_bytes)
        config.save_pretrained(folder)
        (folder / "generation_config.json").write_text(
            json.dumps({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}) + "\n"
        )
        save_tokenizer(byte_tokenizer(), folder)
    return folders


def _write_weights(
    folder: Path, model: str, tensors: list[tuple[str, tuple[int, ...]]], shard_bytes: int
) -> None:
    from safetensors.torch import save_file

    groups: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, shape in tensors:
        nbytes = 2 * int(torch.Size(shape).numel())
        if groups[-1] and size + nbytes > shard_bytes:
            groups.append([])
            size = 0
        groups[-1].append((name, shape))
        size += nbytes
    weight_map: dict[str, str] = {}
    total = 0
    for k, group in enumerate(groups):
        file_name = f"model-{k + 1:05d}-of-{len(groups):05d}.safetensors"
        shard: dict[str, torch.Tensor] = {}
        for name, shape in group:
            tensor = _base_tensor(name, shape)
            if model != "base":
                noise = torch.Generator().manual_seed(_seed(model, name))
                tensor += torch.randn(shape, generator=noise) * 0.002
            shard[name] = tensor.to(torch.bfloat16)
            weight_map[name] = file_name
            total += shard[name].numel() * 2
        save_file(shard, folder / file_name, metadata={"format": "pt"})
        del shard
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
