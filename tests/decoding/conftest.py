"""Tiny offline models for the cooperative decoding tests (character tokenizer, no template).

The character tokenizer makes text and tokens correspond one to one, so comparing texts compares
tokens. ``target`` is a random 2-layer Llama; ``close`` is the target with its second layer's
output projections scaled by 0.5 (it agrees with the target often, not always); ``stranger`` is
an unrelated 1-layer Llama; ``other_vocab`` has a different tokenizer (bytes), as has ``long``,
whose greedy text runs to ``max_tokens``.
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

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from accord.backends import _guard  # noqa: E402
from accord.backends.base import ChatMessage, Request  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
torch.set_num_threads(1)

ALPHABET = "abcdefgh ."
SHAPE = {"hidden": 64, "heads": 4, "init_std": 0.3}


def ask(text: str, **options: object) -> Request:
    """A request with one user message."""
    return Request(messages=(ChatMessage(role="user", content=text),), **options)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def allow_real() -> Iterator[None]:
    previous = _guard.set_forbidden(False)
    try:
        yield
    finally:
        _guard.set_forbidden(previous)


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from accord._tiny import (
        byte_tokenizer,
        char_tokenizer,
        save_tiny_llama,
        save_tokenizer,
        tiny_llama,
    )

    root = tmp_path_factory.mktemp("decoding")
    tokenizer = char_tokenizer(ALPHABET)
    out = {
        "target": save_tiny_llama(root / "target", tokenizer, layers=2, seed=0, **SHAPE),
        "stranger": save_tiny_llama(root / "stranger", tokenizer, layers=1, seed=5, **SHAPE),
        "amateur": save_tiny_llama(root / "amateur", tokenizer, layers=1, seed=6, **SHAPE),
        "other_vocab": save_tiny_llama(
            root / "other", byte_tokenizer(chat_template=None), layers=1, seed=1, **SHAPE
        ),
    }
    out["long"] = save_tiny_llama(  # near-uniform: greedy repeats one token, never ends early
        root / "long", byte_tokenizer(chat_template=None), layers=2, seed=3, hidden=64, heads=4
    )
    close = tiny_llama(tokenizer, layers=2, seed=0, **SHAPE)
    with torch.no_grad():
        layer = close.model.layers[1]
        layer.self_attn.o_proj.weight.mul_(0.5)
        layer.mlp.down_proj.weight.mul_(0.5)
    close.save_pretrained(root / "close")
    save_tokenizer(tokenizer, root / "close")
    out["close"] = root / "close"
    return out
