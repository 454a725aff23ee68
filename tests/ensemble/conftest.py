"""Fixtures for the ensemble tests: offline one-thread torch, tiny saved models, fake backends.

The environment is set before anything imports torch or transformers. The model fixtures build
tiny random models with :mod:`accord._tiny` into a session temporary folder; tests that do not
ask for them never import torch.
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

from collections.abc import AsyncIterator, Iterator, Sequence  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

from accord.backends import _guard  # noqa: E402
from accord.backends.base import (  # noqa: E402
    Capabilities,
    ChatMessage,
    Choice,
    Completion,
    Delta,
    Request,
    TokenLogprob,
)
from accord.messages import Usage  # noqa: E402

TINY: dict[str, Any] = {"hidden": 64, "layers": 2, "heads": 4, "init_std": 0.3}
"""~0.13 M parameters; init_std 0.3 makes greedy output depend on the prompt and the seed."""


def ask(text: str, **options: Any) -> Request:
    return Request(messages=(ChatMessage(role="user", content=text),), **options)


class NBackend:
    """A fake backend that returns ``n`` candidates per call, and log-probabilities on request.

    ``answers`` is called with the request and the sample index and returns the text.
    ``logprob`` is the per-token log-probability it reports (one token per word).
    """

    def __init__(self, answers: Any, *, name: str = "nfake", logprob: float = -0.1) -> None:
        self.name = name
        self.capabilities = Capabilities(n=True, logprobs=True)
        self.answers = answers
        self.logprob = logprob
        self.requests: list[Request] = []

    async def complete(self, request: Request) -> Completion:
        self.requests.append(request)
        choices = []
        for i in range(request.n):
            text = self.answers(request, i)
            lps = (
                tuple(TokenLogprob(token=w, logprob=self.logprob) for w in text.split())
                if request.logprobs
                else None
            )
            choices.append(Choice(text=text, logprobs=lps))
        usage = Usage(requests=1, prompt_tokens=10, completion_tokens=2 * request.n)
        return Completion(choices=tuple(choices), usage=usage, model=self.name)

    async def stream(self, request: Request) -> AsyncIterator[Delta]:
        completion = await self.complete(request)
        yield Delta(text=completion.text)
        yield Delta(finish_reason="stop", usage=completion.usage)


@pytest.fixture(autouse=True)
def no_run_store(monkeypatch: pytest.MonkeyPatch) -> None:
    """Graph runs in these tests are not recorded (nothing is written to ./.accord)."""
    monkeypatch.setenv("ACCORD_DURABILITY", "off")


@pytest.fixture
def allow_real() -> Iterator[None]:
    previous = _guard.set_forbidden(False)
    try:
        yield
    finally:
        _guard.set_forbidden(previous)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of tiny random models: ``a`` and ``b`` (byte tokenizer, Llama, seeds 0 and 1),
    ``bpe`` (a trained BPE tokenizer, GPT-2, seed 2), ``a_eos`` (``a`` with more EOS ids)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import torch

    torch.set_num_threads(1)
    from accord._tiny import bpe_tokenizer, save_tiny_gpt2, save_tiny_llama

    root = tmp_path_factory.mktemp("ensemble_models")
    corpus = ["hello there, general kenobi. " * 20, "def add(a, b):\n    return a + b\n" * 20]
    return {
        "a": save_tiny_llama(root / "a", **TINY, seed=0),
        "b": save_tiny_llama(root / "b", **TINY, seed=1),
        "bpe": save_tiny_gpt2(
            root / "bpe",
            bpe_tokenizer(corpus, vocab_size=330),
            hidden=64,
            layers=2,
            heads=4,
            max_positions=512,
            seed=2,
        ),
    }


def texts(completions: Sequence[Completion]) -> list[str]:
    return [c.text for c in completions]
