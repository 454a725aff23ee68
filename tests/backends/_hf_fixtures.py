"""Shared pieces of the HFBackend tests: offline settings, one torch thread, tiny saved models.

Importing this module sets ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` (no hub at all) and
``TOKENIZERS_PARALLELISM=false`` before transformers is imported. The models are random Llamas
built by :mod:`accord._tiny` into a temporary folder and loaded by folder, as ``hf:FOLDER``.
"""

from __future__ import annotations

import os

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "OMP_NUM_THREADS": "1",
}.items():
    os.environ.setdefault(_name, _value)

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from accord.backends import _guard  # noqa: E402
from accord.backends.base import ChatMessage, Request  # noqa: E402

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
torch.set_num_threads(1)

TINY_SHAPE: dict[str, Any] = {"hidden": 64, "layers": 2, "heads": 4, "init_std": 0.3, "seed": 0}
"""~0.13 M parameters; init_std 0.3 makes greedy output depend on the prompt."""


def ask(text: str, *, system: str | None = None, **options: Any) -> Request:
    """A request with one user message (and a system message when given)."""
    messages = (ChatMessage(role="system", content=system),) if system else ()
    return Request(messages=(*messages, ChatMessage(role="user", content=text)), **options)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Llama with the byte tokenizer and a ChatML template, saved in a folder."""
    from accord._tiny import save_tiny_llama

    return save_tiny_llama(tmp_path_factory.mktemp("hf") / "tiny", **TINY_SHAPE)


@pytest.fixture(scope="session")
def plain_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same tiny Llama whose tokenizer has no chat template."""
    from accord._tiny import byte_tokenizer, save_tiny_llama

    tokenizer = byte_tokenizer(chat_template=None)
    return save_tiny_llama(tmp_path_factory.mktemp("hf") / "plain", tokenizer, **TINY_SHAPE)


@pytest.fixture
def allow_real() -> Iterator[None]:
    """Real (local) backends are allowed, whatever an enclosing fixture forbade."""
    previous = _guard.set_forbidden(False)
    try:
        yield
    finally:
        _guard.set_forbidden(previous)


def direct_generate(backend: Any, request: Request, max_new_tokens: int) -> list[int]:
    """Greedy token ids from a plain ``model.generate`` on the backend's own prompt (the oracle)."""
    ids = backend.encode(backend.chat_prompt(request))
    with torch.inference_mode():
        out = backend.hf_model.generate(
            input_ids=torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=list(backend.eos_token_ids),
            pad_token_id=backend.tokenizer.pad_token_id,
        )
    generated: list[int] = out[0, len(ids) :].tolist()
    return generated


def forward_logprobs(backend: Any, ids: list[int]) -> Any:
    """log_softmax of one unpadded forward pass over ``ids``: shape (len(ids), vocab)."""
    with torch.inference_mode():
        logits = backend.hf_model(input_ids=torch.tensor([ids])).logits[0].float()
    return torch.log_softmax(logits, dim=-1)
