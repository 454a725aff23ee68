"""HFBackend's logits operations against a direct forward pass of the same tiny model."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `import _hf_fixtures` from any layout

from _hf_fixtures import allow_real, forward_logprobs, tiny_dir, torch  # noqa: E402

from accord.backends.hf import HFBackend  # noqa: E402
from accord.errors import ConfigError  # noqa: E402

__all__ = ["allow_real", "tiny_dir"]  # fixtures used by name

pytestmark = pytest.mark.usefixtures("allow_real")


@pytest.fixture
async def backend(tiny_dir: Path) -> AsyncIterator[HFBackend]:
    b = HFBackend(str(tiny_dir))
    await b.load()
    yield b
    b.close()


async def test_next_token_logprobs_equal_a_forward_pass_per_prompt(backend: HFBackend) -> None:
    prompts = ["a", "hello there", "é ✓ and more text"]
    got = await backend.next_token_logprobs(prompts)
    assert len(got) == 3
    for prompt, dist in zip(prompts, got, strict=True):
        expected = forward_logprobs(backend, backend.encode(prompt))[-1]
        assert len(dist) == expected.shape[0] == len(backend.tokenizer)
        values = torch.tensor([dist[i] for i in range(len(dist))])
        assert torch.allclose(values, expected, atol=5e-5)
    assert got[0] != got[1]


async def test_next_token_logprobs_top_k_keeps_the_k_most_likely(backend: HFBackend) -> None:
    full = await backend.next_token_logprobs(["hello"], top_k=None)
    top = await backend.next_token_logprobs(["hello"], top_k=5)
    assert len(top[0]) == 5
    best = sorted(full[0].items(), key=lambda kv: kv[1], reverse=True)[:5]
    assert sorted(top[0]) == sorted(token for token, _ in best)
    for token, value in top[0].items():
        assert value == pytest.approx(full[0][token], abs=1e-5)


async def test_next_token_logprobs_accepts_token_ids(backend: HFBackend) -> None:
    ids = backend.encode("hello")
    by_ids, by_text = await backend.next_token_logprobs([ids, "hello"], top_k=3)
    assert by_ids.keys() == by_text.keys()


async def test_score_equals_a_forward_pass_over_prompt_and_continuation(backend: HFBackend) -> None:
    prompt, continuation = backend.encode("The sea is"), backend.encode(" blue ✓")
    scores = await backend.score("The sea is", " blue ✓")
    assert len(scores) == len(continuation)
    reference = forward_logprobs(backend, prompt + continuation)
    for i, token in enumerate(continuation):
        assert scores[i] == pytest.approx(float(reference[len(prompt) - 1 + i, token]), abs=1e-5)
    assert await backend.score("The sea is", "") == []


async def test_score_ranks_the_models_own_greedy_token_first(backend: HFBackend) -> None:
    dist = (await backend.next_token_logprobs(["hello"]))[0]
    best = max(dist, key=dist.__getitem__)
    worst = min(dist, key=dist.__getitem__)
    assert (await backend.score("hello", [best]))[0] > (await backend.score("hello", [worst]))[0]


async def test_step_decoding_matches_next_token_logprobs_of_the_longer_prompt(
    backend: HFBackend,
) -> None:
    prompt = backend.encode("hello")
    state = await backend.start(prompt, top_k=None)
    assert state.logprobs == pytest.approx(
        (await backend.next_token_logprobs([prompt]))[0], abs=1e-5
    )
    for token in backend.encode(" world"):
        stepped = await backend.step(state, token)
        expected = (await backend.next_token_logprobs([state.ids]))[0]
        assert stepped.keys() == expected.keys()
        assert max(abs(stepped[t] - expected[t]) for t in expected) < 1e-4
    assert state.ids == prompt + backend.encode(" world")


async def test_step_refuses_a_state_from_another_backend(
    backend: HFBackend, tiny_dir: Path
) -> None:
    other = HFBackend(str(tiny_dir))
    state = await other.start("hello", top_k=2)
    assert len(state.logprobs) == 2
    with pytest.raises(ConfigError, match="another backend"):
        await backend.step(state, 5)


async def test_top_k_below_one_raises_config_error(backend: HFBackend) -> None:
    with pytest.raises(ConfigError, match="top_k"):
        await backend.next_token_logprobs(["a"], top_k=0)
