"""Speculative decoding: exact greedy output, the target's sampling distribution, adaptive k."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from conftest import ask

from accord.backends.hf import HFBackend
from accord.decoding import Speculative
from accord.decoding._speculative import Speculative as _Spec
from accord.errors import ConfigError

torch = pytest.importorskip("torch")

PROMPTS = [
    "abc",
    "hello",
    "a",
    "bad cafe",
    "gg.",
    "head",
    "beef.",
    "ace ace",
    "h",
    "dab ba",
    "fade",
    "cab.",
]


async def _alone(target: HFBackend, prompts: list[str], max_tokens: int) -> list[str]:
    return [(await target.complete(ask(p, max_tokens=max_tokens))).text for p in prompts]


@pytest.mark.parametrize(
    ("draft", "k", "adaptive"),
    [("close", 3, False), ("stranger", 2, False), ("close", 2, True), ("target", 5, False)],
)
async def test_speculative_greedy_output_is_the_target_alone_token_for_token(
    models: dict[str, Path], draft: str, k: int, adaptive: bool
) -> None:
    target = HFBackend(str(models["target"]))
    spec = Speculative(target, HFBackend(str(models[draft])), k=k, adaptive=adaptive)
    expected = await _alone(target, PROMPTS, 24)
    got = await asyncio.gather(*(spec.complete(ask(p, max_tokens=24)) for p in PROMPTS))
    assert [c.text for c in got] == expected
    assert spec.stats.verifications > 0
    if draft == "target":  # a draft identical to the target is always accepted
        assert spec.stats.acceptance_rate == 1.0
    if draft == "close":
        assert 0 < spec.stats.acceptance_rate < 1.0


async def test_speculative_rows_of_a_batch_match_each_alone(models: dict[str, Path]) -> None:
    target = HFBackend(str(models["target"]))
    spec = Speculative(target, str(models["close"]), k=3, max_wait_ms=50)
    alone = [(await spec.complete(ask(p, max_tokens=16))).text for p in PROMPTS[:5]]
    batches = spec.batches
    together = await asyncio.gather(*(spec.complete(ask(p, max_tokens=16)) for p in PROMPTS[:5]))
    assert [c.text for c in together] == alone
    assert spec.batches == batches + 1  # five concurrent requests shared one batch


class _FakeRow:
    """The parts of a row the verifier reads: sampling at temperature 1, its own generator."""

    greedy = False

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def probs(self, logits: Any) -> Any:
        return torch.softmax(logits, dim=-1)

    def pick(self, logits: Any) -> int:
        return int(torch.multinomial(self.probs(logits), 1, generator=self.generator))

    def uniform(self) -> float:
        return float(torch.rand((), generator=self.generator))


def test_speculative_rejection_sampler_output_follows_the_target_distribution() -> None:
    # A 4-token vocabulary where draft and target disagree strongly.
    p = torch.tensor([0.5, 0.3, 0.15, 0.05])
    q = torch.tensor([0.1, 0.2, 0.3, 0.4])
    row = _FakeRow(seed=1234)
    spec = _Spec.__new__(_Spec)
    counts = torch.zeros(4)
    trials = 8000
    for _ in range(trials):
        proposal = int(torch.multinomial(q, 1, generator=row.generator))
        taken, nxt = spec._verify(row, [proposal], [q], [p.log(), p.log()], 4)
        first = proposal if taken == 1 else nxt
        counts[first] += 1
    expected = p * trials
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 16.27  # 3 degrees of freedom, p = 0.001
    # The draft's own distribution is far from the target's: a sampler that kept the draft's
    # proposals would fail the same test by a wide margin.
    wrong = float(((q * trials - expected) ** 2 / expected).sum())
    assert wrong > 1000


async def test_speculative_sampled_first_token_follows_the_target(models: dict[str, Path]) -> None:
    target = HFBackend(str(models["target"]))
    spec = Speculative(target, str(models["stranger"]), k=3, max_batch_size=2000)
    prompt = "bad"
    ids = target.encode(target.chat_prompt(ask(prompt)))
    logprobs = (await target.next_token_logprobs([ids]))[0]
    n = 1500
    completion = await spec.complete(ask(prompt, max_tokens=1, temperature=1.0, seed=7, n=n))
    # Tokens are counted by their text; special tokens (text "") form one bucket.
    probs: dict[str, float] = {}
    for token, lp in logprobs.items():
        text = target.decode([token])
        probs[text] = probs.get(text, 0.0) + float(torch.tensor(lp).exp())
    counts: dict[str, int] = {}
    for choice in completion.choices:
        counts[choice.text] = counts.get(choice.text, 0) + 1
    common = [t for t, pr in probs.items() if pr * n >= 5]
    chi2 = sum((counts.get(t, 0) - probs[t] * n) ** 2 / (probs[t] * n) for t in common)
    assert chi2 < 40.0  # about 12 degrees of freedom: p far below 0.001
    assert spec.stats.drafted > 0


async def test_speculative_seeded_sampling_repeats(models: dict[str, Path]) -> None:
    spec = Speculative(str(models["target"]), str(models["close"]), k=3)
    first = await spec.complete(ask("abc", max_tokens=12, temperature=0.9, seed=3))
    second = await spec.complete(ask("abc", max_tokens=12, temperature=0.9, seed=3))
    assert first.text == second.text


async def test_speculative_adaptive_k_shrinks_with_a_poor_draft(models: dict[str, Path]) -> None:
    fixed = Speculative(str(models["target"]), str(models["stranger"]), k=4)
    adaptive = Speculative(str(models["target"]), str(models["stranger"]), k=4, adaptive=True)
    for backend in (fixed, adaptive):
        for prompt in PROMPTS:
            await backend.complete(ask(prompt, max_tokens=40))
    assert fixed.stats.acceptance_rate < 0.3
    assert adaptive.stats.drafted < fixed.stats.drafted / 2
    assert adaptive.stats.target_forwards <= fixed.stats.target_forwards + 8


async def test_speculative_mismatched_tokenizers_are_refused(models: dict[str, Path]) -> None:
    spec = Speculative(str(models["target"]), str(models["other_vocab"]))
    with pytest.raises(ConfigError, match="share one tokenizer"):
        await spec.load()
    with pytest.raises(ConfigError, match="share one tokenizer"):
        await spec.complete(ask("abc", max_tokens=3))


def test_speculative_bad_options_are_refused(models: dict[str, Path]) -> None:
    with pytest.raises(ConfigError, match="k must be at least 1"):
        Speculative(str(models["target"]), str(models["close"]), k=0)
    with pytest.raises(ConfigError, match="local model"):
        Speculative(str(models["target"]), object())
